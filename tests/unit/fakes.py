"""Hand-written in-memory fakes of the ports, for unit tests of the use cases."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from adapters.demo_images import render_png
from adapters.demo_text import DemoTextGenerator
from application.ports import (
    GeneratedImage,
    ImageGenerator,
    ImageRequest,
    TextAnswer,
    TextGenerator,
    TextRequest,
)
from domain.errors import InsPilotError


@dataclass
class Call:
    step: str
    started: float
    finished: float
    request: TextRequest


@dataclass
class RecordingTextGenerator(TextGenerator):
    """Answers like the demo model unless a step is scripted; records every call's timing."""

    latency_s: float = 0.0
    scripted: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, InsPilotError] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    async def complete(self, request: TextRequest) -> TextAnswer:
        started = time.perf_counter()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        step = request.step.rsplit("/", 1)[-1]
        try:
            if step in self.failures:
                raise self.failures[step]
            if self.scripted.get(step):
                return TextAnswer(self.scripted[step].pop(0), "scripted")
            return await DemoTextGenerator().complete(request)
        finally:
            self.calls.append(Call(step, started, time.perf_counter(), request))

    def calls_of(self, step: str) -> list[Call]:
        return [call for call in self.calls if call.step == step]


@dataclass
class FakeImageGenerator(ImageGenerator):
    """Renders tiny real PNGs; `fail_with` makes every job (or every n-th job) fail."""

    latency_s: float = 0.0
    fail_with: InsPilotError | None = None
    fail_every: int = 1
    requests: list[ImageRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            if self.fail_with is not None and len(self.requests) % self.fail_every == 0:
                raise self.fail_with
            return GeneratedImage(render_png(8, 4, len(self.requests)), seed=len(self.requests))
        finally:
            self.in_flight -= 1


@dataclass
class TickingClock:
    """A clock that moves one second per reading, so record timings are predictable."""

    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    readings: int = 0

    def now(self) -> datetime:
        self.readings += 1
        return self.start + timedelta(seconds=self.readings)
