"""What a run is asked to do, checked without torch: names and limits (choices), value checks, the shared sampling
options, one parameter object per task (params) and the migrations of settings written by earlier versions."""
