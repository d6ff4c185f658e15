"""The free-space floor of the data directory: refuse writes before the disk is full.

A full disk panicked the embedded database (WiredTiger) and left storage broken until
a restart. Refusing saves and generations a little earlier (507, code 3, the free space
named) keeps the database healthy; they work again as soon as space is freed, because
every request looks again (one statvfs call, a few microseconds).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from domain.errors import StorageFull
from entrypoints.settings import Settings

STORES = {"stores": True}
"""Route-handler `opt` of a handler that writes to the store (checked by the guard)."""

_MB = 1024 * 1024


def free_mb_on_disk(directory: str) -> int:
    """Free megabytes on the file system `directory` is (or will be) on."""
    path = Path(directory).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent  # not created yet: the file system it will be on
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize // _MB


@dataclass(frozen=True)
class FreeSpace:
    """Free space in the data directory against `INSPILOT_MIN_FREE_MB`.

    `directory` None: the store is not on this machine's disk (memory, a MongoDB server).
    """

    directory: str | None
    min_free_mb: int
    measure: Callable[[str], int] = free_mb_on_disk
    """How a directory's free megabytes are read (a test gives a disk of its own)."""

    @classmethod
    def of(cls, settings: Settings) -> FreeSpace:
        local = settings.storage_backend == "embedded"
        return cls(settings.data_dir if local else None, settings.min_free_mb)

    def free_mb(self) -> int | None:
        """Free megabytes on the data directory's file system, None when not watched."""
        return None if self.directory is None else self.measure(self.directory)

    def _below_floor(self, free: int | None) -> bool:
        return free is not None and self.min_free_mb > 0 and free < self.min_free_mb

    def shortfall(self) -> str | None:
        """Why storing now is refused, or None when there is room (or no floor)."""
        free = self.free_mb()
        if not self._below_floor(free):
            return None
        return (
            f"storage: only {free} MB free on the data disk, below the "
            f"{self.min_free_mb} MB floor (INSPILOT_MIN_FREE_MB); nothing was stored"
        )

    def describe(self) -> tuple[bool, str]:
        """For readiness: enough room?, and the figures."""
        figures = self.figures()
        return not figures["low"], figures["detail"]

    def figures(self) -> dict[str, Any]:
        """For the dashboard: the free MB, the floor, whether saves are refused, in words."""
        free = self.free_mb()
        low = self._below_floor(free)
        if free is None:
            detail = "the store is not on this machine's disk"
        else:
            floor = f"floor {self.min_free_mb} MB" if self.min_free_mb else "no floor"
            detail = f"{free} MB free on the data disk ({floor})"
            if low:
                detail += "; saves and generations are refused (507) until space is freed"
        return {"free_mb": free, "floor_mb": self.min_free_mb, "low": low, "detail": detail}


def free_space_guard(free_space: Callable[[], FreeSpace]) -> Guard:
    """Refuses handlers marked with `opt=STORES` while the data disk is below its floor.

    A coroutine, on every route: Litestar runs a plain function guard in its thread pool
    (40 threads), so 10,000 requests arriving at once queued even `/ping` behind them for
    seconds (benchmarks/hostile_clients.py). One `statvfs` is cheap on the event loop."""

    async def require_free_space(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if not handler.opt.get("stores"):
            return
        problem = free_space().shortfall()
        if problem is not None:
            raise StorageFull(problem)

    return require_free_space
