"""SdWebUIImageGenerator: the ImageGenerator port over a pool of AUTOMATIC1111 instances."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

from application.ports import GeneratedImage, ImageGenerator, ImageRequest
from domain.errors import ModelError, ModelTimeout, ModelUnavailable

from .health import HealthMonitor
from .instance import Instance, PoolStats, parse_endpoint
from .interrupt import Settler
from .ledger import MongoSlotLedger, SharedLedger
from .pool import SlotPool
from .protocol import (
    INTERRUPT_PATH,
    PROBE_PATH,
    TXT2IMG_PATH,
    build_payload,
    error_detail,
    parse_reply,
    progress_idle,
)
from .transport import Reply, SdTransport, TransportError

logger = logging.getLogger("inspilot.sd")

_SEED_RANGE = 2**32


class _Failure(NamedTuple):
    """Why an instance failed a job that another instance may still render."""

    reason: str
    timed_out: bool = False


class _Render:
    """One POST's slot: released as soon as the instance is free, exactly once.

    A 200's headers mean the render is over: the GPU takes its next job while the
    2.4 MB body is still on its way here. An abandoned render's slot belongs to the
    settler (`settling`), which frees it itself.
    """

    def __init__(self, pool: SlotPool, instance: Instance) -> None:
        self.instance = instance
        self.began = time.monotonic()
        self.render_s: float | None = None
        self.settling = False
        self._pool = pool

    def answered(self, status: int) -> None:
        """Free the slot at the first 200 (the transport calls this when the headers are in)."""
        if status == 200 and self.render_s is None and not self.settling:
            self.render_s = time.monotonic() - self.began
            self._pool.release(self.instance, self.render_s)


class SdWebUIImageGenerator(ImageGenerator):
    """Renders each image on an idle healthy instance and reports every failure.

    The original service turned any failure into an empty string, so one dead instance
    in six meant one blank picture in six. Here a connection error, a 5xx or a render
    past `timeout_s` cools the instance down and the job moves at once to another one
    with the same seed; a 4xx or a garbled answer is the job's own failure and is
    raised as is. Nothing returns without a decoded PNG or JPEG.

    Time: a job waits for a slot at most `max_queue_wait_s`, each render gets
    `timeout_s`, and retries may use what is left of the sum of the two. Attempts are
    bounded by the number of instances. Use from one event loop: the one `start()` ran on.
    """

    def __init__(
        self,
        instances: Sequence[str],
        *,
        slots_per_instance: int = 1,
        queue_max: int = 256,
        max_queue_wait_s: float = 300.0,
        timeout_s: float = 180.0,
        health_interval_s: float = 15.0,
        cooldown_base_s: float = 2.0,
        cooldown_max_s: float = 60.0,
        probe_timeout_s: float = 5.0,
        ledger: SharedLedger | None = None,
    ) -> None:
        if not instances:
            raise ValueError("at least one Stable Diffusion instance is needed")
        if slots_per_instance < 1 or queue_max < 0:
            raise ValueError("slots_per_instance must be >= 1 and queue_max >= 0")
        endpoints = [parse_endpoint(raw) for raw in instances]
        urls = [endpoint.url for endpoint in endpoints]
        if len(set(urls)) != len(urls):
            raise ValueError(f"an instance is listed twice: {urls}")
        self._instances = [
            Instance(endpoint, slots_per_instance, number=number)
            for number, endpoint in enumerate(endpoints, start=1)
        ]
        # One process: the slots live here. Several replicas: in MongoDB (ledger.py).
        make_pool = SlotPool if ledger is None else partial(MongoSlotLedger, ledger=ledger)
        self._pool: SlotPool = make_pool(
            self._instances,
            queue_max=queue_max,
            cooldown_base_s=cooldown_base_s,
            cooldown_max_s=cooldown_max_s,
            probe_grace_s=probe_timeout_s,
        )
        self._slots = slots_per_instance
        self._max_queue_wait_s = max_queue_wait_s
        self._timeout_s = timeout_s
        self._health_interval_s = health_interval_s
        self._probe_timeout_s = probe_timeout_s
        self._client: SdTransport | None = None
        self._monitor: HealthMonitor | None = None
        self._settler = Settler(self._pool, self._interrupt, self._is_idle, timeout_s=timeout_s)

    async def start(self) -> None:
        """Open the pooled client on the running loop and find out which instances answer."""
        if self._client is not None:
            return
        client = SdTransport(
            len(self._instances) * (self._slots + 1), connect_timeout_s=self._probe_timeout_s
        )
        await client.start()
        try:
            await self._pool.start()
        except BaseException:
            await client.close()
            raise
        self._client = client
        self._monitor = HealthMonitor(self._pool, self._probe, interval_s=self._health_interval_s)
        self._settler.on_stuck = self._monitor.report_failure
        if isinstance(self._pool, MongoSlotLedger):
            self._pool.interrupt, self._pool.is_idle = self._interrupt, self._is_idle
            self._pool.on_down_elsewhere = self._monitor.watch_recovery
        await self._monitor.start()

    async def close(self) -> None:
        await self._settler.close()
        if self._monitor is not None:
            await self._monitor.close()
            self._monitor = None
        await self._pool.stop()
        if self._client is not None:
            await self._client.close()
            self._client = None

    def stats(self) -> PoolStats:
        return self._pool.stats()

    def queue_length(self) -> int:
        return self._pool.queue_length()

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        """One image; ModelUnavailable, ModelTimeout or ModelAnswerInvalid, never a blank."""
        if self._client is None or self._monitor is None:
            raise RuntimeError("SdWebUIImageGenerator.start() was not awaited")
        # Chosen here, not by the instance, so a retry elsewhere renders the same picture.
        seed = request.seed if request.seed >= 0 else random.randrange(_SEED_RANGE)
        payload = build_payload(request, seed)
        started = time.monotonic()
        queue_deadline = started + self._max_queue_wait_s
        overall_deadline = queue_deadline + self._timeout_s
        failures: list[str] = []
        only_timeouts = True
        for attempt in range(len(self._instances)):
            try:
                instance = await self._pool.acquire(
                    queue_deadline if attempt == 0 else overall_deadline, retry=attempt > 0
                )
            except ModelUnavailable as exc:
                if not failures:
                    raise
                raise ModelUnavailable(
                    f"{exc.message} after: {'; '.join(failures)}", exc.retry_after_s
                ) from None
            budget = min(self._timeout_s, overall_deadline - time.monotonic())
            outcome = await self._attempt(instance, payload, request, seed, budget)
            if isinstance(outcome, GeneratedImage):
                return outcome
            failures.append(outcome.reason)
            only_timeouts = only_timeouts and outcome.timed_out
            if time.monotonic() >= overall_deadline:
                break
        summary = "; ".join(failures)
        if only_timeouts:
            raise ModelTimeout(f"no image within the deadline: {summary}")
        raise ModelUnavailable(
            f"every attempt failed: {summary}", retry_after_s=self._retry_after()
        )

    async def _attempt(
        self,
        instance: Instance,
        payload: dict[str, object],
        request: ImageRequest,
        seed: int,
        budget_s: float,
    ) -> GeneratedImage | _Failure:
        """One render on one instance: the image, or why the instance failed (to retry).

        Errors that another instance would repeat (4xx, a garbled answer, the wrong
        model) are raised. The slot is freed when the instance is free: at once after an
        answer, but after a timeout or a cancellation only once the instance has stopped
        rendering (interrupt.py), so a GPU never gets a second render while busy.
        """
        assert self._client is not None and self._monitor is not None
        render = _Render(self._pool, instance)
        post = asyncio.ensure_future(
            self._client.request(
                "POST",
                instance.url + TXT2IMG_PATH,
                json=payload,
                auth=instance.endpoint.auth,
                on_headers=render.answered,
            )
        )
        try:
            try:
                async with asyncio.timeout(budget_s):
                    response = await asyncio.shield(post)
            except TimeoutError:
                return self._timed_out(render, post, budget_s)
            except TransportError as exc:
                return self._suspect(instance, "the connection failed", detail=str(exc))
            return await self._classify(render, response, request, seed)
        except asyncio.CancelledError:
            instance.cancelled += 1
            if not post.done() and render.render_s is None:
                render.settling = self._settler.settle(instance, post, render.began)
            raise
        finally:
            if not render.settling:
                post.cancel()
                if render.render_s is None:
                    self._pool.release(instance, time.monotonic() - render.began)

    def _timed_out(self, render: _Render, post: asyncio.Future[Reply], budget_s: float) -> _Failure:
        """No reply within the budget: the settler frees the slot once the instance is idle."""
        instance = render.instance
        if render.render_s is None:
            render.settling = self._settler.settle(instance, post, render.began)
        reason = f"no image within {budget_s:.1f}s"
        if budget_s < self._timeout_s:
            # The job ran out of time, not the instance: do not cool it down.
            self._pool.record_failure(instance, reason)
            return _Failure(f"{instance.label}: {reason}", timed_out=True)
        return self._suspect(instance, reason, timed_out=True)

    async def _classify(
        self, render: _Render, response: Reply, request: ImageRequest, seed: int
    ) -> GeneratedImage | _Failure:
        """The reply: an image, an instance failure to retry elsewhere, or the job's own error."""
        instance = render.instance
        if response.status >= 500:
            detail = error_detail(response.content)
            return self._suspect(instance, f"HTTP {response.status} {detail}".strip())
        if response.status != 200:
            reason = (
                f"refused the request: HTTP {response.status} {error_detail(response.content)}"
            ).strip()
            self._pool.record_failure(instance, reason)
            logger.warning("SD instance %s %s", instance.url, reason)
            raise ModelError(f"{instance.label} {reason}")
        render.answered(response.status)
        assert render.render_s is not None
        try:
            # A real reply is ~2.4 MB of JSON: parsing, decoding and hashing it on the
            # event loop would stall every other request for tens of milliseconds.
            image = await asyncio.to_thread(
                parse_reply,
                response.content,
                instance=instance.url,
                label=instance.label,
                seed=seed,
                checkpoint=request.checkpoint,
            )
        except ModelError as exc:
            self._pool.record_failure(instance, exc.message)
            raise
        self._pool.record_success(instance, render.render_s)
        return image

    def _suspect(
        self, instance: Instance, reason: str, *, timed_out: bool = False, detail: str = ""
    ) -> _Failure:
        """Cool the instance down; the caller retries the job elsewhere. The client's
        message names the instance by its number; its URL and the library's `detail` go
        to the log (and the operator's health view) only."""
        assert self._monitor is not None
        self._monitor.report_failure(instance, f"{reason}: {detail}" if detail else reason)
        return _Failure(f"{instance.label}: {reason}", timed_out)

    async def _call(self, instance: Instance, method: str, path: str) -> bytes:
        """A short control call (probe, progress, interrupt), bounded by the probe timeout."""
        assert self._client is not None
        async with asyncio.timeout(self._probe_timeout_s):
            reply = await self._client.request(
                method, instance.url + path, auth=instance.endpoint.auth
            )
        if reply.status >= 400:
            raise TransportError(f"HTTP {reply.status} {error_detail(reply.content)}".strip())
        return reply.content

    async def _probe(self, instance: Instance) -> None:
        await self._call(instance, "GET", PROBE_PATH)

    async def _interrupt(self, instance: Instance) -> None:
        await self._call(instance, "POST", INTERRUPT_PATH)

    async def _is_idle(self, instance: Instance) -> bool:
        return progress_idle(await self._call(instance, "GET", PROBE_PATH))

    def _retry_after(self) -> float:
        stats = self._pool.stats()
        waits = [item.cooldown_remaining_s for item in stats.instances if not item.healthy]
        return round(max(1.0, min(waits, default=1.0)), 1)
