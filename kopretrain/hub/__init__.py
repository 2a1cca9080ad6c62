"""Hugging Face Hub: model cards and the provenance of a released model."""
