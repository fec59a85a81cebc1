"""What a run is asked to do, checked without torch: names, limits, checks, options."""
