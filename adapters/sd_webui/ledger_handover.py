"""Slots passed from job to job: the heart of the shared ledger's "few writes a picture".

When a render ends and jobs wait, its slot is not freed but handed on: the first
ticket is taken off the queue (one update) and, if it waits on another replica, the
slot is put in that replica's inbox (one update); the lease stays, renewed by its new
holder. With nobody waiting, one update frees the slot, and the queue is read once
after it: a job that queued meanwhile would otherwise wait beside a free slot (the
job, for its part, looks for a free slot after queueing). Where a clearly faster busy
instance would finish the head job sooner, the slot goes to the next job or stays free
(ledger_schedule.py).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from pymongo.errors import PyMongoError

from domain.errors import ModelUnavailable

from .instance import Instance
from .ledger_health import SharedHealthPool
from .ledger_queue import LedgerQueue
from .ledger_schedule import place, worth_timing
from .schedule import EWMA_WEIGHT, WAIT_MARGIN

logger = logging.getLogger("inspilot.sd")

_WRITE_TRIES = 5


class Handed(enum.Enum):
    """What became of a slot offered to the queue."""

    TO_A_JOB = 1
    NOBODY_WAITS = 2
    HELD_FOR_A_FASTER_ONE = 3


class HandOverPool(SharedHealthPool):
    """Taking, handing on and giving back slots; the ledger (ledger.py) opens it."""

    def __init__(
        self, instances: Sequence[Instance], *, replica: str, lease_s: float, **pool: Any
    ) -> None:
        super().__init__(instances, **pool)
        self.replica = replica
        self.lease_s = lease_s
        self._held: dict[Instance, list[str]] = {instance: [] for instance in self.instances}
        self._tickets: dict[str, asyncio.Future[Instance]] = {}
        self._queue: LedgerQueue | None = None
        self._queue_seen = 0  # jobs waiting when this replica last looked
        # Tickets withdrawn after a replica had handed them a slot: when the slot
        # arrives, it is passed on. Forgotten after a lease (it expires anyway).
        self._abandoned: dict[str, float] = {}
        # Render-time estimates: the latest here, and the one last written to the
        # instance's document (which the scheduling rule of every replica reads).
        self._latest_render_s: dict[Instance, float | None] = {i: None for i in self.instances}
        self._shared_render_s: dict[Instance, float | None] = {i: None for i in self.instances}
        # May leases be handed on? Not when renewals have failed for a while.
        self._leases_fresh: Callable[[], bool] = lambda: True

    @property
    def queue(self) -> LedgerQueue:
        if self._queue is None:
            raise ModelUnavailable("the shared SD ledger is not open")
        return self._queue

    async def _take_slot(self) -> tuple[Instance, str] | None:
        while True:
            lease = secrets.token_hex(8)
            doc = await self.docs.take(lease, "", self.lease_s)
            if doc is None:
                return None
            instance = self._by_url.get(doc["_id"])
            if instance is not None:
                return instance, lease
            # Configured by another deployment since we started: not ours to use.
            await self.docs.give_back(doc["_id"], lease, None)
            self.docs.foreign.append(doc["_id"])

    def _hold(self, instance: Instance, lease: str) -> None:
        self._held[instance].append(lease)
        instance.busy += 1
        instance.jobs += 1

    # -- giving slots back, or on ----------------------------------------------------

    def release(self, instance: Instance, held_s: float) -> None:
        """Pass the slot on or give it back (in the background: callers are synchronous)."""
        instance.busy_s += held_s
        instance.busy = max(0, instance.busy - 1)
        instance.idle_since = time.monotonic()
        if held_s > 0:
            # The estimate with this render in it: written with the slot's next update
            # (record_success updates the local one only after the picture is read).
            latest = instance.render_s
            self._latest_render_s[instance] = (
                held_s if latest is None else latest + EWMA_WEIGHT * (held_s - latest)
            )
        leases = self._held[instance]
        if not leases:
            logger.error("SD ledger: %s released without a lease held here", instance.url)
            return
        self._spawn(self.pass_on(instance, leases.pop(0)))

    async def pass_on(self, instance: Instance, lease: str) -> None:
        delay = 0.05
        for attempt in range(_WRITE_TRIES):
            try:
                # Hand the slot on only while our leases are surely renewed: a lease
                # taken back meanwhile must be given back (which checks), not handed on.
                if (self._tickets or self._queue_seen) and self._leases_fresh():
                    if await self._hand_over(instance, lease) != Handed.NOBODY_WAITS:
                        return
                await self._free_slot(instance, lease)
                return
            except PyMongoError as exc:
                if attempt == _WRITE_TRIES - 1:
                    # The lease expires and another replica takes the slot back.
                    logger.error("SD ledger: cannot give back %s: %s", instance.url, exc)
                    return
                await asyncio.sleep(delay)
                delay *= 2

    async def _free_slot(self, instance: Instance, lease: str) -> None:
        """Free the slot; a job that queued meanwhile would wait for it: serve the queue."""
        render_s = self._latest_render_s[instance]
        await self.docs.give_back(instance.url, lease, render_s)
        self._shared_render_s[instance] = render_s
        self._queue_seen = await self.queue.waiting()
        if self._queue_seen:
            await self._serve()

    async def _serve(self) -> None:
        """Hand free slots to the waiting jobs, first come first served."""
        while (taken := await self._take_slot()) is not None:
            instance, lease = taken
            handed = await self._hand_over(instance, lease)
            if handed == Handed.TO_A_JOB:
                continue
            await self.docs.give_back(instance.url, lease, None)
            if handed == Handed.HELD_FOR_A_FASTER_ONE:
                return
            self._queue_seen = await self.queue.waiting()
            if not self._queue_seen:
                return

    async def _hand_over(self, instance: Instance, lease: str) -> Handed:
        """Offer a held slot to the queue: the head, or the job the scheduling rule picks."""
        while True:
            placement = await place(instance, self.instances, self.docs, self.queue)
            if placement.position is None:
                self._review_at(placement.review_at)
                return Handed.HELD_FOR_A_FASTER_ONE
            if placement.position == 0:
                ticket = await self.queue.pop_head()
                if ticket is None:
                    self._queue_seen = 0
                    return Handed.NOBODY_WAITS
            else:
                ticket = placement.ticket
                if ticket is None or not await self.queue.withdraw(ticket["id"]):
                    continue  # taken by another replica meanwhile: plan again
            replica, job = ticket["replica"], ticket["id"]
            share = self._render_to_share(instance)
            if share is not None or worth_timing(instance, self.instances):
                await self.docs.started(instance.url, lease, share)
                self._shared_render_s[instance] = share or self._shared_render_s[instance]
            if replica == self.replica:
                if self.deliver(job, instance, lease):
                    return Handed.TO_A_JOB
            elif await self.queue.grant(replica, job, instance.url, lease, self.lease_s):
                return Handed.TO_A_JOB
            # That job gave up, or its replica left: the next one.

    def _render_to_share(self, instance: Instance) -> float | None:
        """The latest estimate, if the shared one is missing or off by a clear margin."""
        latest, shared = self._latest_render_s[instance], self._shared_render_s[instance]
        if latest is None:
            return None
        if shared is None or abs(latest - shared) > WAIT_MARGIN / 2 * shared:
            return latest
        return None

    def deliver(self, ticket: str, instance: Instance, lease: str) -> bool:
        if self._abandoned.pop(ticket, None) is not None:
            return False
        future = self._tickets.pop(ticket, None)
        if future is None or future.done():
            return False
        self._hold(instance, lease)
        future.set_result(instance)
        return True

    def _review_at(self, at: float | None) -> None:
        """Plan again when the faster render a job waits for is overdue: it may be stuck."""
        if at is not None:
            delay = max(0.0, at - time.monotonic())
            asyncio.get_running_loop().call_later(delay, lambda: self._spawn(self._serve()))

    def _slot_may_be_free(self) -> None:
        if self._tickets or self._queue_seen:
            self._spawn(self._serve())

    def held(self) -> list[tuple[str, str]]:
        return [
            (instance.url, lease) for instance, leases in self._held.items() for lease in leases
        ]
