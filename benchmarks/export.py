"""The study export's memory does not grow with the study: peak Python memory (tracemalloc)
while streaming studies of 40, 200 and 800 generations (each with 6 pictures of 200 KB) and
20 participants (each with 10 sketches of 300 KB) from the in-memory repository to /dev/null.

Run: python benchmarks/export.py   (prints a table; the repository's own data is excluded
from the peak, so the figure is what the export holds while it streams).
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.memory_repository import InMemoryExperimentRepository
from application.ports import StudyFilter
from domain.experiment import Experiment, Stage
from domain.generation import GenerationRecord, ImageStep, Outcome, Pipeline, TextStep
from entrypoints.export.archive import stream_study

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n"


def picture(size: int) -> bytes:
    """Random bytes behind a PNG signature: incompressible, like real pictures."""
    return PNG + os.urandom(size - len(PNG))


async def fill(repository: InMemoryExperimentRepository, generations: int) -> None:
    sketch = "data:image/png;base64," + base64.b64encode(picture(300_000)).decode()
    for n in range(20):
        experiment = await repository.get_or_create(Experiment(f"p{n:02d}", created_at=T0))
        schemes = tuple({"name": f"s{k}", "canvasImage": sketch, "paths": []} for k in range(10))
        await repository.save(
            experiment.with_saved_state(
                current_stage=Stage.RAPID_DIVERGENCE,
                design_task="task",
                schemes={Stage.RAPID_DIVERGENCE: schemes},
                at=T0,
            )
        )
    for n in range(generations):
        at = T0 + timedelta(seconds=n)
        text = tuple(TextStep(f"step{k}", "prompt " * 50, at, at, 1, "a#b#c") for k in range(5))
        images = tuple(
            ImageStep("paint/images/scene", "p", "n", at, at, image=picture(200_000), seed=k)
            for k in range(6)
        )
        record = GenerationRecord(
            Pipeline.RAPID_DIVERGENCE,
            {"task": "t"},
            at,
            at,
            Outcome.SUCCEEDED,
            text,
            images,
            username=f"p{n % 20:02d}",
        )
        await repository.add_generation(record)


async def measure(generations: int) -> tuple[float, float, float]:
    repository = InMemoryExperimentRepository()
    await fill(repository, generations)
    tracemalloc.start()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    written = 0
    began = time.perf_counter()
    async for chunk in stream_study(repository, StudyFilter()):
        written += len(chunk)
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    return written / 1e6, peak / 1e6, seconds


def main() -> None:
    print(f"{'generations':>11} {'archive MB':>10} {'peak MB':>8} {'seconds':>8}")
    rows = []
    for generations in (40, 200, 800):
        archive, peak, seconds = asyncio.run(measure(generations))
        rows.append((archive, peak))
        print(f"{generations:>11} {archive:>10.1f} {peak:>8.1f} {seconds:>8.1f}")
    print(
        f"archive grew {rows[-1][0] / rows[0][0]:.1f}x, peak memory {rows[-1][1] / rows[0][1]:.2f}x"
    )


if __name__ == "__main__":
    main()
