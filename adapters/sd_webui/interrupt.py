"""Abandoned renders: interrupt the instance and keep its slot busy until it is idle again.

A job that timed out or was cancelled leaves its instance rendering: A1111 does not
notice a closed connection. Freeing the slot at once would send the next job to a GPU
that is still busy, where it waits in A1111's own queue behind a render nobody wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .instance import Instance
from .pool import SlotPool

logger = logging.getLogger("inspilot.sd")

_POLL_S = 0.25


class Settler:
    """Settles the slots of abandoned renders in background tasks.

    With one slot per instance the render is interrupted (`POST /sdapi/v1/interrupt`
    stops whatever the instance is doing, so with several slots it would kill other
    jobs' renders too: then the render is left to finish). The slot stays busy until
    the original request returns or `/sdapi/v1/progress` shows the instance idle. An
    instance that stays busy past `timeout_s` is handed to `on_stuck` (cooled down).
    """

    def __init__(
        self,
        pool: SlotPool,
        interrupt: Callable[[Instance], Awaitable[None]],
        is_idle: Callable[[Instance], Awaitable[bool]],
        *,
        timeout_s: float,
        on_stuck: Callable[[Instance, str], None] | None = None,
    ) -> None:
        self._pool = pool
        self._interrupt = interrupt
        self._is_idle = is_idle
        self._timeout_s = timeout_s
        self.on_stuck = on_stuck
        self._tasks: set[asyncio.Task[None]] = set()

    def settle(self, instance: Instance, request: asyncio.Future[Any], began: float) -> bool:
        """Take over the slot of an abandoned render; True: the caller must not release it."""
        task = asyncio.get_running_loop().create_task(
            self._settle(instance, request, began), name=f"sd-settle {instance.url}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _settle(self, instance: Instance, request: asyncio.Future[Any], began: float) -> None:
        try:
            if instance.slots == 1:
                try:
                    await self._interrupt(instance)
                except Exception as exc:
                    logger.warning("SD instance %s: interrupt failed: %s", instance.url, exc)
            try:
                async with asyncio.timeout(self._timeout_s):
                    await self._until_free(instance, request)
            except TimeoutError:
                logger.warning(
                    "SD instance %s still busy %.0fs after an abandoned render",
                    instance.url,
                    self._timeout_s,
                )
                if self.on_stuck is not None:
                    self.on_stuck(instance, "still rendering an abandoned job")
        finally:
            request.cancel()
            with contextlib.suppress(BaseException):
                await request
            self._pool.release(instance, time.monotonic() - began)

    async def _until_free(self, instance: Instance, request: asyncio.Future[Any]) -> None:
        while not request.done():
            done, _ = await asyncio.wait({request}, timeout=_POLL_S)
            if done:
                return
            try:
                if await self._is_idle(instance):
                    return
            except Exception:  # a failed poll proves nothing: ask again
                continue

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
