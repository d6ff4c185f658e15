"""Probes: once at start, periodically for healthy instances, and to bring cooled-down ones back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from .instance import Instance
from .pool import SlotPool

logger = logging.getLogger("inspilot.sd")

Probe = Callable[[Instance], Awaitable[None]]

# How long a replica's claim to probe a down instance keeps the others from probing it.
_RECOVERY_CLAIM_S = 1.0


class HealthMonitor:
    """Keeps the pool's view of each instance honest.

    A healthy instance is probed every `interval_s`, so one that died while idle is
    noticed before a job finds out. An instance that failed waits out its cooldown and
    then must pass a probe before the pool uses it again; each failed probe doubles the
    cooldown. Recovery runs one task per down instance, woken when its cooldown ends,
    rather than on the periodic tick, so a 2 s cooldown does not last 15 s.
    """

    def __init__(self, pool: SlotPool, probe: Probe, *, interval_s: float) -> None:
        self._pool = pool
        self._probe = probe
        self._interval_s = interval_s
        self._periodic: asyncio.Task[None] | None = None
        self._recovering: dict[Instance, asyncio.Task[None]] = {}
        self._closed = False

    async def start(self) -> None:
        """Probe every instance at once, then keep watching in the background."""
        await asyncio.gather(*(self._initial_check(item) for item in self._pool.instances))
        healthy = [item.url for item in self._pool.instances if item.healthy]
        logger.info(
            "SD pool: %d of %d instances up: %s",
            len(healthy),
            len(self._pool.instances),
            ", ".join(healthy) or "none",
        )
        if not healthy:
            self._pool.declare_outage()
        self._periodic = asyncio.create_task(self._watch(), name="sd-health")

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._recovering.values()]
        if self._periodic is not None:
            tasks.append(self._periodic)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._recovering.clear()
        self._periodic = None

    def watch_recovery(self, instance: Instance) -> None:
        """Another replica found the instance down: help bring it back (one probes at a time)."""
        self._watch_recovery(instance)

    def report_failure(self, instance: Instance, reason: str) -> None:
        """A job failed because of the instance: cool it down and start bringing it back."""
        self._pool.mark_down(instance, reason)
        self._watch_recovery(instance)

    async def _initial_check(self, instance: Instance) -> None:
        # Every replica probes every instance once when it starts (one cheap GET each):
        # it must not begin with a view older than its own start.
        try:
            await self._probe(instance)
        except Exception as exc:
            self._pool.mark_down(instance, _describe(exc), probe=True)
            logger.warning("SD instance %s does not answer: %s", instance.url, _describe(exc))
            self._watch_recovery(instance)
        else:
            self._pool.mark_up(instance)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            healthy = [item for item in self._pool.instances if item.healthy]
            await asyncio.gather(*(self._periodic_check(item) for item in healthy))

    async def _periodic_check(self, instance: Instance) -> None:
        if not await self._pool.claim_probe(instance, self._interval_s):
            return
        try:
            await self._probe(instance)
        except Exception as exc:
            if instance.healthy:
                self._pool.mark_down(instance, f"probe failed: {_describe(exc)}", probe=True)
                self._watch_recovery(instance)

    def _watch_recovery(self, instance: Instance) -> None:
        if self._closed:  # jobs failing during shutdown must not start new tasks
            return
        task = self._recovering.get(instance)
        if task is None or task.done():
            self._recovering[instance] = asyncio.create_task(
                self._recover(instance), name=f"sd-recover {instance.url}"
            )

    async def _recover(self, instance: Instance) -> None:
        while not instance.healthy:
            await asyncio.sleep(max(0.0, instance.cooldown_until - time.monotonic()))
            if not await self._pool.claim_probe(instance, _RECOVERY_CLAIM_S):
                # Another replica is probing it: its verdict reaches us through the ledger.
                await asyncio.sleep(_RECOVERY_CLAIM_S)
                continue
            try:
                await self._probe(instance)
            except Exception as exc:
                self._pool.mark_down(instance, f"probe failed: {_describe(exc)}", probe=True)
            else:
                self._pool.mark_up(instance)
        self._recovering.pop(instance, None)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
