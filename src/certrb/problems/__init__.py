"""Ready-made truth models."""

from .diffusion1d import diffusion1d
from .scattering3d import scattering3d
from .thermal_block import thermal_block

__all__ = ["diffusion1d", "scattering3d", "thermal_block"]
