"""Training: model presets and loading, masking collators, MLM/RTD objectives, packing, Trainers."""
