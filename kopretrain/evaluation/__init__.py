"""Evaluation: metrics and calibration, the TF-IDF baseline, the human-readable report."""
