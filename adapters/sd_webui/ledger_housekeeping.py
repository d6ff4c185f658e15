"""The ledger's upkeep, every third of a lease: heartbeat, lease renewal, dead replicas.

A replica that stops beating (killed, frozen, cut off) leaves leases that nobody renews.
Once one has expired, another replica interrupts what the instance still renders for
the dead holder (one slot per instance: the GPU is shared), then frees the slot with an
update only one reclaimer can win, and hands it to the queue. The dead replica's tickets
are dropped so they do not block the head. Upkeep also reads every instance document
back (health written by the others) and, as a safety net, serves the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from .instance import Instance

if TYPE_CHECKING:
    from .ledger import MongoSlotLedger

logger = logging.getLogger("inspilot.sd")

_IDLE_CHECKS = 20
_IDLE_CHECK_S = 0.25


class Housekeeper:
    def __init__(self, ledger: MongoSlotLedger, lease_s: float) -> None:
        self._ledger = ledger
        self._lease_s = lease_s
        self.reclaimed = 0
        self._renewed_at = time.monotonic()
        self._missing: set[str] = set()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                await self.round()
            except Exception as exc:  # the heartbeat must go on after a bad round
                logger.warning("SD ledger: housekeeping failed: %s", exc)

    async def round(self) -> None:
        ledger = self._ledger
        docs, queue = ledger.docs, ledger.queue
        await queue.beat(self._lease_s)
        await docs.renew(ledger.held(), self._lease_s)
        self._renewed_at = time.monotonic()
        now = time.time()
        for url, expired in await docs.expired(now):
            instance = ledger._by_url.get(url)
            if instance is not None:
                await self._reclaim(instance, expired, now)
        dead = await queue.forget_dead_replicas()
        if dead:
            logger.warning("SD ledger: replicas stopped beating: %s", ", ".join(dead))
        await ledger.refresh()  # shared health, written by the others
        await self._find_lost_tickets()
        if await queue.waiting() and await docs.has_free_slot():
            await ledger._serve()

    def renewed_lately(self) -> bool:
        """Are this replica's leases surely still valid (renewed less than half a lease ago)?"""
        return time.monotonic() - self._renewed_at < self._lease_s / 2

    async def _find_lost_tickets(self) -> None:
        """A ticket taken off the queue by a replica that died (or was refused a slot
        for missing a beat) before handing it one: missing twice in a row, it goes back."""
        ledger = self._ledger
        waiting = set(ledger._tickets)
        if not waiting:
            self._missing = set()
            return
        missing = waiting - await ledger.queue.tickets_of(ledger.replica)
        await ledger.requeue(sorted(missing & self._missing))
        self._missing = missing

    async def _reclaim(self, instance: Instance, lease: dict[str, Any], now: float) -> None:
        """Interrupt what the instance renders for a dead holder, then free the slot."""
        if instance.slots == 1:
            await self._stop_render(instance)
        if await self._ledger.docs.reclaim(instance.url, lease["id"], now):
            self.reclaimed += 1
            logger.warning(
                "SD ledger: took back a slot of %s: the lease of %s (job %s) expired",
                instance.url,
                lease["holder"],
                lease.get("job"),
            )
            await self._ledger._serve()

    async def _stop_render(self, instance: Instance) -> None:
        ledger = self._ledger
        if ledger.interrupt is None:
            return
        try:
            await ledger.interrupt(instance)
            for _ in range(_IDLE_CHECKS):
                if ledger.is_idle is None or await ledger.is_idle(instance):
                    return
                await asyncio.sleep(_IDLE_CHECK_S)
        except Exception as exc:  # a dead instance: its health probe will say so
            logger.warning("SD ledger: interrupt of %s failed: %s", instance.url, exc)
