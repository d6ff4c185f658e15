"""A study's worth of real-size pictures, written before a benchmark measures anything.

An empty database says nothing about the hot path: a study holds ~5,000 pictures (30
participants × 30 generations × 6), about 8.8 GB. `prefilled_study` writes them through
the repository into the embedded database the service will then open.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.embedded_mongo import EmbeddedMongoProcess
from adapters.mongo import MongoExperimentRepository
from domain.generation import GenerationRecord, ImageStep, Outcome, Pipeline
from tests.fakes.sdapi_server import real_size_png

STUDY_IMAGES = 5_004  # 834 records of 6
PER_RECORD = 6


def picture_record(n: int, per_record: int = PER_RECORD) -> GenerationRecord:
    """A rapid-divergence record with `per_record` distinct real-size pictures."""
    at = datetime.now(UTC)
    steps = tuple(
        ImageStep("scene", f"p{n}-{i}", "neg", at, at, image=real_size_png(1024, 576, f"{n}/{i}"))
        for i in range(per_record)
    )
    return GenerationRecord(
        pipeline=Pipeline.RAPID_DIVERGENCE,
        inputs={"task": "bench", "num": per_record},
        started_at=at,
        finished_at=at,
        outcome=Outcome.SUCCEEDED,
        image_steps=steps,
        username=f"p{n % 30}",
    )


async def _write(uri: str, images: int) -> None:
    repository = MongoExperimentRepository(uri)
    await repository.start()
    try:
        for n in range(images // PER_RECORD):
            await repository.add_generation(await asyncio.to_thread(picture_record, n))
    finally:
        await repository.close()


def prefill_study(data_dir: str, images: int = STUDY_IMAGES) -> None:
    """Write `images` pictures into the embedded database under `data_dir`, then stop it."""
    if images <= 0:
        return
    began = time.perf_counter()
    with EmbeddedMongoProcess(data_dir) as uri:
        asyncio.run(_write(uri, images))
    gigabytes = images * 1.77 / 1000
    print(
        f"prefilled the database with {images} real-size pictures ({gigabytes:.1f} GB) "
        f"in {time.perf_counter() - began:.0f} s\n"
    )


@contextlib.contextmanager
def study_directory(prefix: str, images: int, storage: str) -> Iterator[str]:
    """A temporary data directory, holding a study's pictures when storage is embedded."""
    with tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
        if storage == "embedded":
            prefill_study(data_dir, images)
        yield data_dir
