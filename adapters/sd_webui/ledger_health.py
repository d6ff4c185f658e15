"""Instance health shared through the ledger: one replica's verdict spares the others.

The in-process pool's bookkeeping (cooldowns, outage clock) runs on a local mirror of
the instance documents; each change of health is written through, and the documents
other replicas wrote are adopted when read back (housekeeping, every third of a lease).
Only one replica probes an instance at a time (a claim on its document).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from pymongo.errors import PyMongoError

from domain.errors import ModelUnavailable

from .instance import Instance
from .ledger_documents import LedgerDocuments
from .pool import SlotPool

logger = logging.getLogger("inspilot.sd")


class SharedHealthPool(SlotPool):
    """The slot pool's health rules over the shared instance documents."""

    def __init__(self, instances: Sequence[Instance], **pool: Any) -> None:
        super().__init__(instances, **pool)
        self._by_url = {instance.url: instance for instance in self.instances}
        self._health_writes: dict[Instance, int] = {instance: 0 for instance in self.instances}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._docs: LedgerDocuments | None = None
        self.on_down_elsewhere: Callable[[Instance], None] | None = None

    @property
    def docs(self) -> LedgerDocuments:
        if self._docs is None:
            raise ModelUnavailable("the shared SD ledger is not open")
        return self._docs

    async def refresh(self) -> None:
        for doc in await self.docs.read():
            self._mirror(doc)

    def _mirror(self, doc: dict[str, Any]) -> None:
        """Adopt another replica's view of an instance (unless our own write is on its way)."""
        instance = self._by_url.get(doc["_id"])
        if instance is None:
            return
        instance.busy = max(0, doc["slots"] - doc["free"])
        if doc.get("render_s") is not None:
            instance.render_s = doc["render_s"]
        if self._health_writes[instance]:
            return
        instance.consecutive_failures = doc["consecutive_failures"]
        cooldown_until = time.monotonic() + doc["cooldown_until"] - time.time()
        if doc["healthy"] and not instance.healthy:
            SlotPool.mark_up(self, instance)
        elif not doc["healthy"] and instance.healthy:
            instance.healthy = False
            instance.last_error = doc.get("last_error")
            instance.cooldown_until = cooldown_until
            logger.warning("SD instance %s is down (seen by another replica)", instance.url)
            if self.on_down_elsewhere is not None:
                self.on_down_elsewhere(instance)
            if not any(item.healthy for item in self.instances):
                self._start_outage_clock()
        elif not doc["healthy"]:
            instance.cooldown_until = cooldown_until

    def mark_down(self, instance: Instance, reason: str, *, probe: bool = False) -> None:
        super().mark_down(instance, reason, probe=probe)
        self._write_health(instance)

    def mark_up(self, instance: Instance) -> None:
        if not instance.healthy:
            super().mark_up(instance)
            self._write_health(instance)

    def record_success(self, instance: Instance, render_s: float | None = None) -> None:
        recovered = instance.consecutive_failures > 0
        super().record_success(instance, render_s)
        if recovered:
            self._write_health(instance)

    def _write_health(self, instance: Instance) -> None:
        fields = {
            "healthy": instance.healthy,
            "cooldown_until": time.time() + instance.cooldown_until - time.monotonic(),
            "consecutive_failures": instance.consecutive_failures,
            "last_error": instance.last_error,
        }
        self._health_writes[instance] += 1

        async def write() -> None:
            try:
                await self.docs.write_health(instance.url, fields)
            finally:
                self._health_writes[instance] -= 1
            if instance.healthy:
                self._slot_may_be_free()

        self._spawn(write())

    def _slot_may_be_free(self) -> None:
        """An instance came up: the ledger hands its slots to waiting jobs."""

    async def claim_probe(self, instance: Instance, hold_s: float) -> bool:
        """One replica probes an instance at a time: the claim holds the others off."""
        try:
            return await self.docs.claim_probe(instance.url, hold_s)
        except (PyMongoError, ModelUnavailable):
            return False

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("SD ledger: a background write failed: %s", task.exception())
