"""Hugging Face Hub: loading checkpoints (local or Hub id + revision, safetensors only), model cards, provenance."""
