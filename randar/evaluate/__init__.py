"""Evaluation harness: held-out edits of a model against classical baselines (`python -m randar.evaluate`)."""
