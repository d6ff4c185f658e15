"""Slots over the instances, a strict FIFO queue in front of them, and cooldowns."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence

from domain.errors import ModelUnavailable

from .instance import Instance, PoolStats
from .schedule import plan, record_render

logger = logging.getLogger("inspilot.sd")


class SlotPool:
    """Hands each job a slot on a healthy instance, first come first served.

    Choice among free instances: the least loaded, then the one idle longest, so work
    spreads evenly and a just-recovered instance is used at once; once renders have been
    timed, the slot that finishes a job soonest (schedule.py), so a slow instance does
    not hold the last job of a batch. Jobs are handed slots in queue order. Retries of a
    job that already waited go to the head of the queue: they were admitted long ago.
    When every instance is down, queued jobs wait at most until the earliest cooldown
    ends (plus one probe); if nothing came back by then the pool declares an outage and
    fails them, and later jobs fail at once until an instance is up again.
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        *,
        queue_max: int,
        cooldown_base_s: float,
        cooldown_max_s: float,
        probe_grace_s: float,
    ) -> None:
        self.instances = tuple(instances)
        self._queue_max = queue_max
        self._cooldown_base_s = cooldown_base_s
        self._cooldown_max_s = cooldown_max_s
        self._probe_grace_s = probe_grace_s
        self._waiters: deque[asyncio.Future[Instance]] = deque()
        self._outage = False
        self._outage_timer: asyncio.TimerHandle | None = None
        self._review_timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Nothing to open: the slots live in this process (the shared ledger opens MongoDB)."""

    async def stop(self) -> None:
        self.close()

    async def claim_probe(self, instance: Instance, hold_s: float) -> bool:
        """May this process probe `instance` now? Always, when it is the only process."""
        return True

    # -- acquiring and releasing ---------------------------------------------------

    async def acquire(self, deadline: float, *, retry: bool = False) -> Instance:
        """A slot, or ModelUnavailable when the queue is full, the wait too long or all down."""
        enqueued = time.monotonic()
        if retry or not self._waiters:
            instance = self._pick_for_new_job()
            if instance is not None:
                self._take(instance, waited_s=0.0)
                return instance
        if self._outage:
            raise ModelUnavailable(
                "no Stable Diffusion instance is up", retry_after_s=self._outage_retry_after()
            )
        if not retry and len(self._waiters) >= self._queue_max:
            raise ModelUnavailable(
                f"the image queue is full ({len(self._waiters)} jobs waiting)",
                retry_after_s=self._busy_retry_after(),
            )
        future: asyncio.Future[Instance] = asyncio.get_running_loop().create_future()
        if retry:
            self._waiters.appendleft(future)
        else:
            self._waiters.append(future)
        self._dispatch()  # cheap insurance: a free slot never sits beside a waiting job
        try:
            async with asyncio.timeout(deadline - enqueued):
                instance = await future
        except BaseException as exc:
            # The slot may have been handed over just as we were cancelled: give it back,
            # or it would stay busy for ever.
            if future.done() and not future.cancelled() and future.exception() is None:
                handed = future.result()
                handed.jobs -= 1  # it never ran there
                self._give_back(handed)
            else:
                future.cancel()
                self._forget(future)
            if isinstance(exc, TimeoutError):
                raise ModelUnavailable(
                    f"no image slot freed within {time.monotonic() - enqueued:.1f}s",
                    retry_after_s=self._busy_retry_after(),
                ) from None
            raise
        self._record_wait(instance, time.monotonic() - enqueued)
        return instance

    def release(self, instance: Instance, held_s: float) -> None:
        """Free the slot; call it in a `finally` so a cancelled job never leaks one."""
        instance.busy_s += held_s
        instance.render_durations.observe(held_s)
        self._give_back(instance)

    def queue_length(self) -> int:
        return len(self._waiters)

    def stats(self) -> PoolStats:
        now = time.monotonic()
        return PoolStats(
            queue_length=len(self._waiters),
            outage=self._outage,
            instances=tuple(instance.snapshot(now) for instance in self.instances),
        )

    def _pick_for_new_job(self) -> Instance | None:
        """A free slot now, unless a busy faster instance would finish the job sooner."""
        timed = plan(self.instances, 1, time.monotonic())
        if timed is None:
            return self._pick()
        if timed.review_at is not None:
            self._review(timed.review_at)
        return timed.now[0][1] if timed.now else None

    def _pick(self) -> Instance | None:
        free = [instance for instance in self.instances if instance.free]
        if not free:
            return None
        return min(free, key=lambda instance: (instance.busy / instance.slots, instance.idle_since))

    def _take(self, instance: Instance, waited_s: float) -> None:
        self._occupy(instance)
        self._record_wait(instance, waited_s)

    def _occupy(self, instance: Instance) -> None:
        instance.busy += 1
        instance.jobs += 1
        instance.running.append(time.monotonic())

    def _record_wait(self, instance: Instance, waited_s: float) -> None:
        instance.queue_wait_total_s += waited_s
        instance.queue_wait_max_s = max(instance.queue_wait_max_s, waited_s)
        instance.wait_durations.observe(waited_s)

    def _give_back(self, instance: Instance) -> None:
        instance.busy -= 1
        if instance.running:
            # Which of its jobs ended is not known; the oldest is the likeliest.
            instance.running.remove(min(instance.running))
        instance.idle_since = time.monotonic()
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to the waiters in queue order; the waiter records its own wait."""
        if any(future.done() for future in self._waiters):
            self._waiters = deque(future for future in self._waiters if not future.done())
        if not self._waiters:
            return
        timed = plan(self.instances, len(self._waiters), time.monotonic())
        if timed is None:
            while self._waiters and (instance := self._pick()) is not None:
                future = self._waiters.popleft()
                self._occupy(instance)
                future.set_result(instance)
            return
        served = {position: instance for position, instance in timed.now}
        if served:
            kept: deque[asyncio.Future[Instance]] = deque()
            for position, future in enumerate(self._waiters):
                instance = served.get(position)
                if instance is None:
                    kept.append(future)
                    continue
                self._occupy(instance)
                future.set_result(instance)
            self._waiters = kept
        if timed.review_at is not None and self._waiters:
            self._review(timed.review_at)

    def _review(self, at: float) -> None:
        """Plan again when a render we are waiting for is overdue: it may be stuck."""
        if self._review_timer is not None:
            self._review_timer.cancel()
        delay = max(0.0, at - time.monotonic())
        self._review_timer = asyncio.get_running_loop().call_later(delay, self._dispatch)

    def _forget(self, future: asyncio.Future[Instance]) -> None:
        try:
            self._waiters.remove(future)
        except ValueError:
            pass

    # -- health ----------------------------------------------------------------------

    def record_success(self, instance: Instance, render_s: float | None = None) -> None:
        instance.consecutive_failures = 0
        if render_s is not None:
            record_render(instance, render_s)

    def record_failure(self, instance: Instance, reason: str) -> None:
        """A failed job the instance is not to blame for (a 4xx, a garbled answer)."""
        instance.failures += 1
        instance.last_error = reason

    def mark_down(self, instance: Instance, reason: str, *, probe: bool = False) -> None:
        """Cool the instance down; the backoff grows with each failure in a row.

        A second job failing on an instance already down does not stretch its cooldown:
        only failed probes do, so the backoff counts outages, not jobs in flight.
        """
        instance.last_error = reason
        if not probe:
            instance.failures += 1
        if not instance.healthy and not probe:
            return
        instance.consecutive_failures += 1
        exponent = min(instance.consecutive_failures - 1, 30)
        cooldown = min(self._cooldown_base_s * 2**exponent, self._cooldown_max_s)
        instance.cooldown_until = time.monotonic() + cooldown
        if instance.healthy:
            instance.healthy = False
            logger.warning("SD instance %s is down for %.1fs: %s", instance.url, cooldown, reason)
        else:
            logger.debug("SD instance %s still down, next probe in %.1fs", instance.url, cooldown)
        if not any(item.healthy for item in self.instances):
            self._start_outage_clock()

    def mark_up(self, instance: Instance) -> None:
        if instance.healthy:
            return
        instance.healthy = True
        instance.idle_since = time.monotonic()
        logger.info("SD instance %s is up", instance.url)
        self._outage = False
        if self._outage_timer is not None:
            self._outage_timer.cancel()
            self._outage_timer = None
        self._dispatch()

    def declare_outage(self) -> None:
        """Nothing is up and nothing is about to be: fail every waiting job now."""
        if self._outage_timer is not None:
            self._outage_timer.cancel()
            self._outage_timer = None
        if any(item.healthy for item in self.instances):
            return
        if not self._outage:
            logger.error("no SD instance is up: image jobs fail until one recovers")
        self._outage = True
        error_retry = self._outage_retry_after()
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_exception(
                    ModelUnavailable("no Stable Diffusion instance is up", error_retry)
                )

    def close(self) -> None:
        """Fail the jobs still waiting: nobody will ever hand them a slot now."""
        for timer in (self._outage_timer, self._review_timer):
            if timer is not None:
                timer.cancel()
        self._outage_timer = self._review_timer = None
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_exception(ModelUnavailable("the image generator is shutting down"))

    def _start_outage_clock(self) -> None:
        if self._outage or self._outage_timer is not None:
            return
        earliest = min(item.cooldown_until for item in self.instances)
        delay = max(0.0, earliest - time.monotonic()) + self._probe_grace_s
        self._outage_timer = asyncio.get_running_loop().call_later(delay, self.declare_outage)

    def _outage_retry_after(self) -> float:
        earliest = min(item.cooldown_until for item in self.instances)
        return round(max(1.0, earliest - time.monotonic() + self._probe_grace_s), 1)

    def _busy_retry_after(self) -> float:
        """Roughly how long the queue ahead takes to drain, from the renders seen so far."""
        jobs = sum(item.jobs for item in self.instances)
        busy = sum(item.busy_s for item in self.instances)
        per_job = busy / jobs if jobs else 10.0
        slots = sum(item.slots for item in self.instances if item.healthy) or 1
        return round(max(1.0, per_job * (len(self._waiters) + 1) / slots), 1)
