"""kopretrain: adapt Korean language models to noisy user text and build sentiment labelers."""

__version__ = "0.1.0"
