"""Inference: load a classifier with its text preparation and score texts in batches."""
