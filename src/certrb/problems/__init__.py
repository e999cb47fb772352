"""Ready-made truth models."""

from .diffusion1d import diffusion1d

__all__ = ["diffusion1d"]
