"""Ready-made truth models."""

from .advection2d import advection2d
from .diffusion1d import diffusion1d
from .scattering3d import scattering3d
from .thermal_block import thermal_block

__all__ = ["advection2d", "diffusion1d", "scattering3d", "thermal_block"]
