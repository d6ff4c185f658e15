"""Stable Diffusion (AUTOMATIC1111 / Forge) image generation over a pool of instances."""

from .generator import SdWebUIImageGenerator
from .instance import InstanceStats, PoolStats
from .ledger import SharedLedger

__all__ = ["InstanceStats", "PoolStats", "SdWebUIImageGenerator", "SharedLedger"]
