"""A monotonic clock that moves only when the code under test sleeps on it."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Pass as `clock=` and `sleep=`: every wait is recorded and takes no real time.

    Tests then assert how long the code chose to wait (a Retry-After honoured, a
    cooldown doubled) exactly, instead of timing it on a machine that may be busy.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is
