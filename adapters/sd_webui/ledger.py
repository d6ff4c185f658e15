"""The SD slots shared by every replica, in MongoDB (documents: ledger_documents.py).

Several API processes (workers of one host, or hosts behind a load balancer) must not
each believe they own every GPU. A render takes a slot with one atomic update that sets
a lease (holder replica, job, expiry), renewed while the render runs, and gives it back
with one update. Waiting jobs queue in MongoDB in arrival order across replicas; only
the first `free` tickets may take a slot, so no replica jumps the queue, and retries
wait at the head. A replica learns that a slot was freed from a change stream where the
deployment has one (a replica set), else by polling with a backoff of at most
`poll_max_s`, and only while it has jobs waiting. A replica that dies leaves leases
that expire; another takes the slots back, interrupting the instance first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from domain.errors import ModelUnavailable

from .instance import Instance, PoolStats
from .ledger_documents import LedgerDocuments
from .pool import SlotPool

logger = logging.getLogger("inspilot.sd")

POLL_MIN_S = 0.005
# With a change stream, polling is only a safety net (a ticket ahead of ours cancelled).
_STREAM_POLL_S = 0.25
_GIVE_BACK_TRIES = 5


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


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class MongoSlotLedger(SlotPool):
    """The slot pool's contract (acquire, release, health) over documents in MongoDB.

    Health bookkeeping (cooldowns, outage clock) is the in-process pool's, applied to a
    local mirror of the instance documents and written through, so one replica's failed
    probe spares the others a failed render. Use from one event loop.
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        *,
        ledger: SharedLedger,
        queue_max: int,
        cooldown_base_s: float,
        cooldown_max_s: float,
        probe_grace_s: float,
    ) -> None:
        super().__init__(
            instances,
            queue_max=queue_max,
            cooldown_base_s=cooldown_base_s,
            cooldown_max_s=cooldown_max_s,
            probe_grace_s=probe_grace_s,
        )
        self._ledger = ledger
        self.replica = ledger.replica or replica_name()
        self._urls = [instance.url for instance in self.instances]
        self._by_url = {instance.url: instance for instance in self.instances}
        self._held: dict[Instance, list[str]] = {instance: [] for instance in self.instances}
        self._tickets: dict[str, asyncio.Future[Instance]] = {}
        self._health_writes: dict[Instance, int] = {instance: 0 for instance in self.instances}
        self._wake = asyncio.Event()
        self._expected_ends: list[float] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._docs: LedgerDocuments | None = None
        self.change_stream = False
        self.reclaimed = 0
        # Set by the generator: how to stop an instance rendering for a dead holder.
        self.interrupt: Callable[[Instance], Awaitable[None]] | None = None
        self.is_idle: Callable[[Instance], Awaitable[bool]] | None = None
        self.on_down_elsewhere: Callable[[Instance], None] | None = None

    # -- opening and closing -------------------------------------------------------

    @property
    def docs(self) -> LedgerDocuments:
        if self._docs is None:
            raise ModelUnavailable("the shared SD ledger is not open")
        return self._docs

    async def start(self) -> None:
        ledger = self._ledger
        self._client = AsyncMongoClient(
            ledger.uri(),
            serverSelectionTimeoutMS=ledger.timeout_ms,
            connectTimeoutMS=ledger.timeout_ms,
        )
        docs = self._docs = LedgerDocuments(self._client, ledger.database, self.replica)
        try:
            await docs.prepare({instance.url: instance.slots for instance in self.instances})
            await docs.beat(ledger.lease_s)
            await self._refresh()
            self.change_stream = await docs.has_change_streams()
        except PyMongoError as exc:
            await self._client.close()
            self._client = self._docs = None
            raise ModelUnavailable(f"the shared SD ledger is unreachable: {exc}") from exc
        self._loops = [
            asyncio.create_task(self._dispatch_loop(), name="sd-ledger-dispatch"),
            asyncio.create_task(self._housekeeping_loop(), name="sd-ledger-housekeeping"),
        ]
        if self.change_stream:
            self._loops.append(asyncio.create_task(self._watch_loop(), name="sd-ledger-watch"))
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
            for instance, leases in self._held.items():
                for lease in leases:
                    await self.docs.give_back(instance.url, lease, instance.render_s)
                leases.clear()
            await self.docs.leave()
        await self._client.close()
        self._client = self._docs = None

    def close(self) -> None:
        super().close()
        for ticket, future in list(self._tickets.items()):
            if not future.done():
                future.set_exception(ModelUnavailable("the image generator is shutting down"))
            self._tickets.pop(ticket, None)

    # -- taking and giving back slots ------------------------------------------------

    async def acquire(self, deadline: float, *, retry: bool = False) -> Instance:
        enqueued = time.monotonic()
        try:
            if retry or (not self._tickets and await self.docs.queue_is_empty()):
                instance = await self._take_lease(secrets.token_hex(8))
                if instance is not None:
                    self._record_wait(instance, 0.0)
                    return instance
            if self._outage:
                raise ModelUnavailable(
                    "no Stable Diffusion instance is up", retry_after_s=self._outage_retry_after()
                )
            if not retry:
                waiting = await self.docs.queue_size()
                if waiting >= self._queue_max:
                    raise ModelUnavailable(
                        f"the image queue is full ({waiting} jobs waiting)",
                        retry_after_s=self._busy_retry_after(),
                    )
        except PyMongoError as exc:
            raise ModelUnavailable(f"the shared SD ledger is unreachable: {exc}") from exc
        return await self._wait_in_queue(enqueued, deadline, retry)

    async def _wait_in_queue(self, enqueued: float, deadline: float, retry: bool) -> Instance:
        ticket = secrets.token_hex(8)
        future: asyncio.Future[Instance] = asyncio.get_running_loop().create_future()
        self._tickets[ticket] = future
        try:
            async with asyncio.timeout(deadline - enqueued):
                await self.docs.enqueue(ticket, retry)
                self._wake.set()
                instance = await future
        except BaseException as exc:
            self._tickets.pop(ticket, None)
            if future.done() and not future.cancelled() and future.exception() is None:
                handed = future.result()
                handed.jobs -= 1  # it never ran there
                self.release(handed, 0.0)
            else:
                future.cancel()
                self._spawn(self.docs.dequeue(ticket))
            if isinstance(exc, TimeoutError):
                raise ModelUnavailable(
                    f"no image slot freed within {time.monotonic() - enqueued:.1f}s",
                    retry_after_s=self._busy_retry_after(),
                ) from None
            if isinstance(exc, PyMongoError):
                raise ModelUnavailable(f"the shared SD ledger is unreachable: {exc}") from exc
            raise
        self._record_wait(instance, time.monotonic() - enqueued)
        return instance

    async def _take_lease(self, job: str) -> Instance | None:
        lease = secrets.token_hex(8)
        url = await self.docs.take(self._urls, lease, job, self._ledger.lease_s)
        if url is None:
            return None
        instance = self._by_url[url]
        self._held[instance].append(lease)
        instance.busy += 1
        instance.jobs += 1
        return instance

    def release(self, instance: Instance, held_s: float) -> None:
        """Give the slot back (one update, in the background: callers are synchronous)."""
        instance.busy_s += held_s
        instance.busy = max(0, instance.busy - 1)
        instance.idle_since = time.monotonic()
        leases = self._held[instance]
        if not leases:
            logger.error("SD ledger: %s released without a lease held here", instance.url)
            return
        self._spawn(self._give_back_soon(instance, leases.pop(0)))

    async def _give_back_soon(self, instance: Instance, lease: str) -> None:
        delay = 0.05
        for attempt in range(_GIVE_BACK_TRIES):
            try:
                await self.docs.give_back(instance.url, lease, instance.render_s)
                break
            except PyMongoError as exc:
                if attempt == _GIVE_BACK_TRIES - 1:
                    # The lease expires and another replica takes the slot back.
                    logger.error("SD ledger: cannot give back %s: %s", instance.url, exc)
                    return
                await asyncio.sleep(delay)
                delay *= 2
        self._wake.set()

    def queue_length(self) -> int:
        return len(self._tickets)

    def stats(self) -> PoolStats:
        stats = super().stats()
        return PoolStats(len(self._tickets), stats.outage, stats.instances)

    # -- the dispatcher: hands freed slots to this replica's tickets in queue order ----

    def _dispatch(self) -> None:
        self._wake.set()

    async def _dispatch_loop(self) -> None:
        delay = POLL_MIN_S
        while True:
            if not self._tickets:
                self._wake.clear()
                await self._wake.wait()
                delay = POLL_MIN_S
                continue
            self._wake.clear()
            try:
                progressed = await self._serve_queue()
            except Exception as exc:  # the loop must outlive a bad read: jobs wait on it
                logger.warning("SD ledger: dispatch failed: %s", exc)
                progressed = False
            if progressed:
                delay = POLL_MIN_S
                continue
            wait = _STREAM_POLL_S if self.change_stream else await self._until_freed(delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            delay = POLL_MIN_S if wait < delay else min(delay * 2, self._ledger.poll_max_s)

    async def _until_freed(self, delay: float) -> float:
        """The next poll: after the backoff's `delay`, or sooner when a render is expected
        to end before it (polling then resumes at its shortest step), so a slot another
        replica gives back waits a few ms for a poll, not half the backoff on average.
        The expected ends are read once for several renders: a lease taken later ends
        later."""
        now = time.time()
        ends = [end for end in self._expected_ends if end > now]
        if not ends:
            try:
                ends = await self.docs.expected_ends(self._urls, self._ledger.lease_s, now)
            except PyMongoError:
                ends = []
        self._expected_ends = ends
        if not ends:
            return delay
        return min(delay, max(POLL_MIN_S, ends[0] - now))

    async def _serve_queue(self) -> bool:
        # Only the instances with a free slot: with many instances and a long queue,
        # few (the health of all is mirrored by housekeeping and the change stream).
        free = await self.docs.free_slots(self._urls)
        if free <= 0:
            return False
        served: list[str] = []
        for ticket in await self.docs.head(free):
            future = self._tickets.get(ticket)
            if future is None or future.done():
                continue
            instance = await self._take_lease(ticket)
            if instance is None:
                break  # another replica was quicker: read the ledger again
            self._tickets.pop(ticket, None)
            served.append(ticket)
            if future.done():  # its job gave up meanwhile
                instance.jobs -= 1
                self.release(instance, 0.0)
            else:
                future.set_result(instance)
        if served:
            # Had this failed, housekeeping drops the served tickets later.
            await self.docs.dequeue(*served)
        return bool(served)

    async def _watch_loop(self) -> None:
        while True:
            try:
                watch = self.docs.instances.watch(full_document="updateLookup")
                async with await watch as stream:
                    async for change in stream:
                        doc = change.get("fullDocument")
                        if doc is not None:
                            self._mirror(doc)
                        self._wake.set()
            except PyMongoError as exc:
                logger.warning("SD ledger: change stream lost (%s); reopening", exc)
                await asyncio.sleep(1.0)

    # -- heartbeat, lease renewal, reclaiming what dead replicas held -----------------

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(self._ledger.lease_s / 3)
            try:
                await self._housekeeping()
            except Exception as exc:  # the heartbeat must go on after a bad round
                logger.warning("SD ledger: housekeeping failed: %s", exc)

    async def _housekeeping(self) -> None:
        docs, lease_s = self.docs, self._ledger.lease_s
        await docs.beat(lease_s)
        for instance, leases in self._held.items():
            for lease in list(leases):
                await docs.renew(instance.url, lease, lease_s)
        now = time.time()
        for url, expired in await docs.expired(self._urls, now):
            await self._reclaim(self._by_url[url], expired, now)
        dead = await docs.forget_dead_replicas()
        if dead:
            logger.warning("SD ledger: replicas stopped beating: %s", ", ".join(dead))
        await docs.drop_served(list(self._tickets))
        await self._refresh()  # shared health, where no change stream brings it

    async def _reclaim(self, instance: Instance, lease: dict[str, Any], now: float) -> None:
        """Interrupt what the instance renders for a dead holder, then free the slot."""
        if instance.slots == 1:
            await self._stop_render(instance)
        if await self.docs.reclaim(instance.url, lease["id"], now):
            self.reclaimed += 1
            logger.warning(
                "SD ledger: took back a slot of %s: the lease of %s (job %s) expired",
                instance.url,
                lease["holder"],
                lease.get("job"),
            )
            self._wake.set()

    async def _stop_render(self, instance: Instance) -> None:
        if self.interrupt is None:
            return
        try:
            await self.interrupt(instance)
            for _ in range(20):
                if self.is_idle is None or await self.is_idle(instance):
                    return
                await asyncio.sleep(0.25)
        except Exception as exc:  # a dead instance: its health probe will say so
            logger.warning("SD ledger: interrupt of %s failed: %s", instance.url, exc)

    # -- shared health ---------------------------------------------------------------

    async def _refresh(self) -> None:
        for doc in await self.docs.read(self._urls):
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

    def declare_outage(self) -> None:
        super().declare_outage()
        if not self._outage:
            return
        error = ModelUnavailable("no Stable Diffusion instance is up", self._outage_retry_after())
        for ticket, future in list(self._tickets.items()):
            if not future.done():
                future.set_exception(error)
            self._tickets.pop(ticket, None)
            self._spawn(self.docs.dequeue(ticket))

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

        self._spawn(write())

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
