"""The SD slots shared by every replica, in MongoDB.

Several API processes (workers of one host, or hosts behind a load balancer) must not
each believe they own every GPU. A render takes a slot with one atomic update that sets
a lease (holder replica, job, expiry), renewed while the render runs. When it ends and
jobs wait, the slot is not freed but handed to the first waiting job: the lease is
rewritten for it, its ticket taken off the queue and, if it waits on another replica,
the slot put in that replica's inbox; with nobody waiting, one update gives it back.
So a picture costs about one write to take a slot and one to give it back, and waiting
replicas never poll the instances: each only collects its inbox, woken by a change
stream where the deployment has one, else polling with a backoff of at most
`poll_max_s`, and only while it has jobs waiting. Retries wait at the head of the queue.
A replica that dies leaves leases that expire; another takes the slots back,
interrupting the instance first (ledger_housekeeping.py).

Modules: ledger_documents.py (instance documents), ledger_queue.py (the queue and the
replicas' inboxes), ledger_health.py (shared health), ledger_schedule.py (waiting for a
clearly faster instance), ledger_housekeeping.py (heartbeat, renewals, dead replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from domain.errors import ModelUnavailable

from .instance import Instance, PoolStats
from .ledger_documents import LedgerDocuments
from .ledger_handover import HandOverPool
from .ledger_housekeeping import Housekeeper
from .ledger_inbox import Inbox
from .ledger_queue import LedgerQueue
from .ledger_schedule import place

logger = logging.getLogger("inspilot.sd")


@dataclass(frozen=True)
class SharedLedger:
    """Where the shared ledger lives; `uri` is asked at start (the embedded server's port
    is known only once it runs)."""

    uri: Callable[[], str]
    database: str = "inspilot"
    lease_s: float = 15.0
    timeout_ms: int = 5000
    poll_max_s: float = 0.05
    replica: str | None = None
    # Connections to the database per replica. Every waiting job used to hold one: the
    # embedded server runs a thread per connection, and 300 threads sharing its one
    # interpreter answered a point read in 400 ms instead of 0.3 ms (measured).
    connections: int = 3


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class MongoSlotLedger(HandOverPool):
    """The slot pool's contract (acquire, release, health) over documents in MongoDB.

    Use from one event loop.
    """

    def __init__(self, instances: Sequence[Instance], *, ledger: SharedLedger, **pool: Any) -> None:
        super().__init__(
            instances, replica=ledger.replica or replica_name(), lease_s=ledger.lease_s, **pool
        )
        self._ledger = ledger
        self.inbox = Inbox(self, ledger.poll_max_s)
        self._loops: list[asyncio.Task[None]] = []
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self.change_stream = False
        self.housekeeper = Housekeeper(self, ledger.lease_s)
        self._leases_fresh = self.housekeeper.renewed_lately
        # Set by the generator: how to stop an instance rendering for a dead holder.
        self.interrupt: Callable[[Instance], Awaitable[None]] | None = None
        self.is_idle: Callable[[Instance], Awaitable[bool]] | None = None

    # -- opening and closing -------------------------------------------------------

    async def start(self) -> None:
        ledger = self._ledger
        self._client = AsyncMongoClient(
            ledger.uri(),
            serverSelectionTimeoutMS=ledger.timeout_ms,
            connectTimeoutMS=ledger.timeout_ms,
            maxPoolSize=ledger.connections,
        )
        docs = self._docs = LedgerDocuments(self._client, ledger.database, self.replica)
        queue = self._queue = LedgerQueue(self._client, ledger.database, self.replica)
        try:
            await docs.prepare({instance.url: instance.slots for instance in self.instances})
            await queue.prepare()
            await queue.beat(ledger.lease_s)
            await self.refresh()
            self.change_stream = await docs.has_change_streams()
        except PyMongoError as exc:
            await self._client.close()
            self._client = self._docs = self._queue = None
            raise _unreachable(exc) from exc
        self._loops = [
            asyncio.create_task(self.inbox.run(), name="sd-ledger-inbox"),
            asyncio.create_task(self.housekeeper.run(), name="sd-ledger-housekeeping"),
        ]
        if self.change_stream:
            self._loops.append(asyncio.create_task(self.inbox.watch(), name="sd-ledger-watch"))
        waking = "change stream" if self.change_stream else f"polling <= {ledger.poll_max_s}s"
        logger.info(
            "SD ledger in MongoDB: replica %s, lease %.0fs, %s",
            self.replica,
            ledger.lease_s,
            waking,
        )

    async def stop(self) -> None:
        """Fail local waiters, give back what this replica holds, and leave the ledger."""
        self.close()
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops = []
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is None:
            return
        with contextlib.suppress(PyMongoError):
            await self.queue.leave()
            _, grants = await self.queue.collect(self.inbox.seen)
            for grant in grants:
                await self.docs.give_back(grant["url"], grant["lease"], None)
            for instance, leases in self._held.items():
                for lease in leases:
                    await self.docs.give_back(instance.url, lease, instance.render_s)
                leases.clear()
        await self._client.close()
        self._client = self._docs = self._queue = None

    def close(self) -> None:
        super().close()
        self._fail_waiters(ModelUnavailable("the image generator is shutting down"))

    def _fail_waiters(self, error: ModelUnavailable) -> None:
        for ticket, future in list(self._tickets.items()):
            if not future.done():
                future.set_exception(error)
            self._tickets.pop(ticket, None)

    # -- taking slots ------------------------------------------------------------------

    async def acquire(self, deadline: float, *, retry: bool = False) -> Instance:
        enqueued = time.monotonic()
        try:
            if retry:
                waiting = 0
            elif self._tickets:  # a job of ours waits already: so will this one
                waiting = max(len(self._tickets), self._queue_seen)
            else:
                waiting = self._queue_seen = await self.queue.waiting()
            if waiting == 0:
                instance = await self._take_now()
                if instance is not None:
                    self._record_wait(instance, 0.0)
                    return instance
            if self._outage:
                raise ModelUnavailable(
                    "no Stable Diffusion instance is up", retry_after_s=self._outage_retry_after()
                )
            if not retry and waiting >= self._queue_max:
                raise ModelUnavailable(
                    f"the image queue is full ({waiting} jobs waiting)",
                    retry_after_s=self._busy_retry_after(),
                )
        except PyMongoError as exc:
            raise _unreachable(exc) from exc
        return await self._wait_in_queue(enqueued, deadline, retry)

    async def _take_now(self) -> Instance | None:
        """A free slot for a job nobody is ahead of, unless a faster busy one is better."""
        taken = await self._take_slot()
        if taken is None:
            return None
        instance, lease = taken
        placement = await place(instance, self.instances, self.docs, None)
        if placement.position is None:
            await self.docs.give_back(instance.url, lease, None)
            self._review_at(placement.review_at)
            return None
        self._hold(instance, lease)
        return instance

    async def _wait_in_queue(self, enqueued: float, deadline: float, retry: bool) -> Instance:
        ticket = secrets.token_hex(8)
        future: asyncio.Future[Instance] = asyncio.get_running_loop().create_future()
        self._tickets[ticket] = future
        try:
            async with asyncio.timeout(deadline - enqueued):
                await self.queue.enqueue(ticket, retry)
                self.inbox.wake.set()
                # A slot freed while we queued would wait for nobody: serve the queue.
                self._spawn(self._serve())
                instance = await future
        except BaseException as exc:
            self._tickets.pop(ticket, None)
            if future.done() and not future.cancelled() and future.exception() is None:
                handed = future.result()
                handed.jobs -= 1  # it never ran there
                self.release(handed, 0.0)
            else:
                future.cancel()
                self._spawn(self._withdraw(ticket))
            if isinstance(exc, TimeoutError):
                raise ModelUnavailable(
                    f"no image slot freed within {time.monotonic() - enqueued:.1f}s",
                    retry_after_s=self._busy_retry_after(),
                ) from None
            if isinstance(exc, PyMongoError):
                raise _unreachable(exc) from exc
            raise
        self._record_wait(instance, time.monotonic() - enqueued)
        return instance

    async def _withdraw(self, ticket: str) -> None:
        if not await self.queue.withdraw(ticket):
            self._abandoned[ticket] = time.monotonic()  # its slot is on the way
            self.inbox.wake.set()

    def queue_length(self) -> int:
        return len(self._tickets)

    def stats(self) -> PoolStats:
        stats = super().stats()
        return PoolStats(len(self._tickets), stats.outage, stats.instances)

    def declare_outage(self) -> None:
        super().declare_outage()
        if not self._outage:
            return
        tickets = list(self._tickets)
        self._fail_waiters(
            ModelUnavailable("no Stable Diffusion instance is up", self._outage_retry_after())
        )
        for ticket in tickets:
            self._spawn(self._withdraw(ticket))

    # -- tickets that lost their way ----------------------------------------------------

    async def requeue(self, tickets: list[str]) -> None:
        """Tickets still waiting here that no slot will reach: back to the head."""
        for ticket in tickets:
            future = self._tickets.get(ticket)
            if future is not None and not future.done():
                logger.warning("SD ledger: a ticket was lost; it waits at the head again")
                with contextlib.suppress(PyMongoError):
                    await self.queue.enqueue(ticket, True)

    def forget_abandoned(self) -> None:
        too_old = time.monotonic() - self.lease_s
        for ticket, since in list(self._abandoned.items()):
            if since < too_old:
                del self._abandoned[ticket]

    @property
    def reclaimed(self) -> int:
        return self.housekeeper.reclaimed


def _unreachable(exc: PyMongoError) -> ModelUnavailable:
    """The client learns which part failed; the driver's words (addresses, topology) go to
    the log line, which carries the request id."""
    logger.warning("the shared SD ledger is unreachable: %s", exc)
    return ModelUnavailable("the shared SD ledger (storage) is unreachable")
