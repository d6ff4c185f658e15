"""A replica's inbox: the slots other replicas handed to its waiting jobs.

Read only while the replica has jobs waiting (or a slot is on its way to a job that
gave up): on a replica set it is woken by a change stream on its own document, with a
slow poll as a safety net; on a standalone server it polls with a backoff from 5 ms
to `poll_max_s`. Each read is one lookup by `_id` that returns nothing when nothing
came (ledger_queue.py), so an idle inbox costs the server little.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from pymongo.errors import PyMongoError

if TYPE_CHECKING:
    from .ledger import MongoSlotLedger

logger = logging.getLogger("inspilot.sd")

POLL_MIN_S = 0.005
# With a change stream, polling is only a safety net.
STREAM_POLL_S = 0.25


class Inbox:
    def __init__(self, ledger: MongoSlotLedger, poll_max_s: float) -> None:
        self._ledger = ledger
        self._poll_max_s = poll_max_s
        self.seen = 0
        self.wake = asyncio.Event()

    def _needed(self) -> bool:
        return bool(self._ledger._tickets or self._ledger._abandoned)

    async def run(self) -> None:
        delay = POLL_MIN_S
        while True:
            if not self._needed():
                self.wake.clear()
                await self.wake.wait()
                delay = POLL_MIN_S
                continue
            self.wake.clear()
            got = await self.read()
            self._ledger.forget_abandoned()
            if got:
                delay = max(POLL_MIN_S, delay / 2)
            else:
                delay = min(delay * 2, self._poll_max_s)
            stream = self._ledger.change_stream
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STREAM_POLL_S if stream else delay):
                    await self.wake.wait()

    async def read(self) -> int:
        """Deliver what arrived; how many grants that was."""
        ledger = self._ledger
        try:
            self.seen, grants = await ledger.queue.collect(self.seen)
        except Exception as exc:  # the loop must outlive a bad read: jobs wait on it
            logger.warning("SD ledger: reading the inbox failed: %s", exc)
            return 0
        for grant in grants:
            self._receive(grant)
        return len(grants)

    def _receive(self, grant: dict[str, Any]) -> None:
        ledger = self._ledger
        instance = ledger._by_url.get(grant["url"])
        if instance is None:
            return  # not ours: its lease runs out and is taken back
        if not ledger.deliver(grant["ticket"], instance, grant["lease"]):
            ledger._spawn(ledger.pass_on(instance, grant["lease"]))

    async def watch(self) -> None:
        mine = [{"$match": {"documentKey._id": self._ledger.replica}}]
        while True:
            try:
                async with await self._ledger.queue.replicas.watch(mine) as stream:
                    async for _change in stream:
                        self.wake.set()
            except PyMongoError as exc:
                logger.warning("SD ledger: change stream lost (%s); reopening", exc)
                await asyncio.sleep(1.0)
