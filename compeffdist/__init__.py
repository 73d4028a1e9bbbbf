"""compeffdist: Ray-distributed CompEffDist (Xie et al., EMNLP 2025)."""

__version__ = "0.1.0"
