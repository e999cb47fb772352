"""Ready-made truth models."""

from .diffusion1d import diffusion1d
from .thermal_block import thermal_block

__all__ = ["diffusion1d", "thermal_block"]
