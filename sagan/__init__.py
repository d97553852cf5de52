"""sagan: Self-Attention GAN (Zhang et al. 2019) for class-conditional image synthesis."""

__version__ = "0.1.0"
