"""Stable Diffusion (AUTOMATIC1111 / Forge) image generation over a pool of instances."""

from .generator import SdWebUIImageGenerator
from .instance import InstanceStats, PoolStats

__all__ = ["InstanceStats", "PoolStats", "SdWebUIImageGenerator"]
