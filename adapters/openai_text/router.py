"""Which endpoint takes a call (healthy, with room, by weight); probes that bring one back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

from adapters.openai_text.endpoint import TextEndpoint
from adapters.openai_text.failures import Failure, classify
from adapters.openai_text.health import COOLDOWN_BASE_S, COOLDOWN_MAX_S, Health

log = logging.getLogger("inspilot.text")

Probe = Callable[[TextEndpoint], Awaitable[object]]
Sleep = Callable[[float], Awaitable[None]]


class Router:
    """Shares calls among endpoints and keeps each one's health.

    A call goes to a healthy endpoint with room, drawn at random with odds of its
    weight divided by its measured latency: a weight-2 endpoint gets twice the calls of
    a weight-1 one as fast, and one three times slower gets a third of its share. Each
    cooldown starts a task that waits it out and probes; only a passed probe puts the
    endpoint back. Every change of room or health wakes the steps that wait for one.
    """

    def __init__(
        self,
        endpoints: Sequence[TextEndpoint],
        probe: Probe,
        *,
        cooldown_base_s: float = COOLDOWN_BASE_S,
        cooldown_max_s: float = COOLDOWN_MAX_S,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        names = [endpoint.name for endpoint in endpoints]
        if not names or len(set(names)) != len(names):
            raise ValueError("at least one text endpoint, each with its own name, is required")
        for endpoint in endpoints:
            endpoint.health = Health(base_s=cooldown_base_s, max_s=cooldown_max_s, clock=clock)
        self.endpoints = tuple(endpoints)
        self._probe = probe
        self._sleep = sleep  # with `clock`, lets a test see each cooldown's wait exactly
        self._rng = rng or random.Random()
        self._changed = asyncio.Event()
        self._recovering: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def start(self) -> None:
        """Fresh asyncio state on the loop that runs the calls (a restarted app has a new one)."""
        self._changed = asyncio.Event()
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._recovering.values())
        self._recovering.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def capable(self, vision: bool) -> list[TextEndpoint]:
        return [endpoint for endpoint in self.endpoints if endpoint.serves(vision)]

    def acquire(self, candidates: Sequence[TextEndpoint], vision: bool) -> TextEndpoint | None:
        """Take a slot on a healthy candidate with room; None when there is none."""
        open_ = [e for e in candidates if e.health.healthy and e.has_room]
        if not open_:
            return None
        chosen = self.choose(open_, vision)
        chosen.in_flight += 1
        return chosen

    def choose(self, endpoints: Sequence[TextEndpoint], vision: bool) -> TextEndpoint:
        """By weight over latency; an endpoint not yet measured counts as typical."""
        known = [s for e in endpoints if (s := e.latency_s(vision)) is not None]
        typical = statistics.fmean(known) if known else 1.0
        odds = [e.weight / max(e.latency_s(vision) or typical, 1e-3) for e in endpoints]
        return self._rng.choices(endpoints, weights=odds)[0]

    def release(self, endpoint: TextEndpoint) -> None:
        endpoint.in_flight -= 1
        self._notify()

    def succeeded(self, endpoint: TextEndpoint, vision: bool, seconds: float) -> None:
        endpoint.calls["ok"] += 1
        endpoint.health.succeeded()
        endpoint.answered_in(vision, seconds)

    def answered_badly(self, endpoint: TextEndpoint, outcome: str) -> None:
        """It answered, so it is up; the answer was just unusable (filtered, empty)."""
        endpoint.calls[outcome] += 1
        endpoint.health.succeeded()

    def failed(self, endpoint: TextEndpoint, failure: Failure) -> None:
        """Count the failure; outages (not refusals or wrong keys) may cool the endpoint down."""
        endpoint.calls[failure.outcome] += 1
        if not failure.retryable:
            return
        health = endpoint.health
        if health.failed(
            failure.reason, retry_after_s=failure.retry_after_s, asks_to_wait=failure.asks_to_wait
        ):
            log.warning(
                "text endpoint '%s' cools down for %.1fs: %s",
                endpoint.name,
                health.remaining_s(),
                failure.reason,
            )
            self._watch(endpoint)
            self._notify()

    async def wait_for_change(self, deadline: float) -> None:
        """Until an endpoint frees a slot or changes health; TimeoutError at `deadline`."""
        changed = self._changed
        async with asyncio.timeout_at(deadline):
            await changed.wait()

    def _notify(self) -> None:
        # A fresh event per change: waiters hold the old one, which stays set for them.
        self._changed.set()
        self._changed = asyncio.Event()

    def _watch(self, endpoint: TextEndpoint) -> None:
        if self._closed:  # calls failing during shutdown must not start new tasks
            return
        task = self._recovering.get(endpoint.name)
        if task is None or task.done():
            self._recovering[endpoint.name] = asyncio.create_task(
                self._recover(endpoint), name=f"text-recover {endpoint.name}"
            )

    async def _recover(self, endpoint: TextEndpoint) -> None:
        health = endpoint.health
        while not health.healthy:
            await self._sleep(health.remaining_s())
            if health.remaining_s() > 0:  # a late 429 lengthened the cooldown meanwhile
                continue
            health.probe_started()
            try:
                await self._probe(endpoint)
            except Exception as exc:
                failure = classify(exc)
                endpoint.probes["failed"] += 1
                length = health.probe_failed(failure.reason, failure.retry_after_s)
                log.warning(
                    "text endpoint '%s' failed its probe (%s); cooling down %.1fs more",
                    endpoint.name,
                    failure.logged,
                    length,
                )
            else:
                endpoint.probes["passed"] += 1
                health.probe_passed()
                log.info("text endpoint '%s' passed its probe and takes calls again", endpoint.name)
            self._notify()
        self._recovering.pop(endpoint.name, None)
