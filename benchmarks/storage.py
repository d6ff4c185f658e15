"""Save and load sessions of 1, 20 and 100 MB through MongoExperimentRepository; prints a table.

Run: python benchmarks/storage.py   (INSPILOT_TEST_MONGODB_URI to use a server of your own).
The embedded server runs in a child process so memory figures are the adapter's alone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymongo import AsyncMongoClient

from adapters.embedded_mongo import EmbeddedMongoServer
from adapters.mongo import MongoExperimentRepository
from domain.experiment import Experiment, Stage

MB = 1_000_000
# (label, schemes, canvasImage bytes per scheme)
SIZES = [("1 MB", 2, 500_000), ("20 MB", 40, 500_000), ("100 MB", 100, 1_000_000)]


def serve(data_dir: str, uris: Any, stop: Any) -> None:
    with EmbeddedMongoServer(data_dir) as uri:
        uris.put(uri)
        stop.wait()


def scheme(i: int, image_bytes: int, rng: random.Random) -> dict[str, Any]:
    image = base64.b64encode(rng.randbytes(image_bytes * 3 // 4)).decode()
    strokes = [[{"x": rng.uniform(0, 800), "y": rng.uniform(0, 600)} for _ in range(60)]] * 20
    return {
        "name": f"方案{i}",
        "canvasSvg": "<svg>" + "<path d='M0 0 L10 10'/>" * 200 + "</svg>",
        "canvasImage": f"data:image/png;base64,{image}",
        "paths": strokes,
        "texts": [{"text": "可折叠的把手", "position": {"x": 10, "y": 20}}],
    }


def peak_rss_mb() -> float:
    """Peak RSS since the last reset (Linux VmHWM), else the process-wide maximum."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1000
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1000


def reset_peak_rss() -> None:
    # Linux resets VmHWM on "5"; elsewhere the figure stays the process-wide maximum.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


Operation = tuple[str, Callable[[], Awaitable[Any]]]


def operations(repository: MongoExperimentRepository, session: Experiment) -> list[Operation]:
    """A first save, a same-content autosave, a save with one sketch redrawn, a load."""
    rapid = session.schemes_of(Stage.RAPID_DIVERGENCE)
    redrawn = {**rapid[-1], "canvasImage": rapid[-1]["canvasImage"][::-1]}
    edited = session.with_saved_state(
        current_stage=None,
        design_task=None,
        schemes={Stage.RAPID_DIVERGENCE: (*rapid[:-1], redrawn)},
        at=datetime.now(UTC),
    )
    return [
        ("save (new)", lambda: repository.save(session)),
        ("save unchanged", lambda: repository.save(session)),
        ("save 1 redrawn", lambda: repository.save(edited)),
        ("load", lambda: repository.get(session.username)),
    ]


async def session_of(
    repository: MongoExperimentRepository, username: str, schemes: tuple[Any, ...]
) -> Experiment:
    started = await repository.get_or_create(Experiment(username=username))
    return started.with_saved_state(
        current_stage=Stage.RAPID_DIVERGENCE,
        design_task="bench",
        schemes={Stage.RAPID_DIVERGENCE: schemes},
        at=datetime.now(UTC),
    )


async def run(uri: str) -> None:
    database = f"bench_{os.getpid()}"
    repository = MongoExperimentRepository(uri, database)
    await repository.start()
    rng = random.Random(7)
    header = (
        f"{'session':>8} {'operation':<15} {'seconds':>8} {'MB/s':>7} "
        f"{'peak RSS MB':>12} {'py heap peak MB':>16}"
    )
    print(header)
    print("-" * len(header))
    try:
        for label, count, image_bytes in SIZES:
            schemes = tuple(scheme(i, image_bytes, rng) for i in range(count))
            size = len(json.dumps(schemes)) / MB
            timed = await session_of(repository, f"timed-{label}", schemes)
            traced = await session_of(repository, f"traced-{label}", schemes)
            # Timed without tracemalloc (it slows allocation); the same steps again under it.
            figures = []
            for _name, operation in operations(repository, timed):
                reset_peak_rss()
                began = time.perf_counter()
                await operation()
                figures.append((time.perf_counter() - began, peak_rss_mb()))
            for (name, operation), (seconds, rss) in zip(
                operations(repository, traced), figures, strict=True
            ):
                tracemalloc.start()
                await operation()
                heap = tracemalloc.get_traced_memory()[1] / MB
                tracemalloc.stop()
                print(
                    f"{label:>8} {name:<15} {seconds:>8.2f} {size / seconds:>7.1f} "
                    f"{rss:>12.0f} {heap:>16.0f}"
                )
            del schemes, timed, traced
    finally:
        await repository.close()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        await client.drop_database(database)
        await client.close()


def main() -> None:
    uri = os.environ.get("INSPILOT_TEST_MONGODB_URI")
    if uri:
        asyncio.run(run(uri))
        return
    with tempfile.TemporaryDirectory(prefix="inspilot-bench-") as data_dir:
        context = mp.get_context("spawn")
        uris, stop = context.Queue(), context.Event()
        server = context.Process(target=serve, args=(data_dir, uris, stop), daemon=True)
        server.start()
        try:
            uri = uris.get(timeout=30)
            print(f"embedded SecantusDB at {uri} (child process {server.pid})")
            asyncio.run(run(uri))
        finally:
            stop.set()
            server.join(timeout=15)


if __name__ == "__main__":
    main()
