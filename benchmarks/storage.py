"""Storage at real scale through MongoExperimentRepository, on the embedded default.

1. A study's pictures: 2,000 real-size images (1024 × 576 PNGs of 1.77 MB, distinct),
   written as generation records of 6 through the repository: MB/s per 200 images, the
   last 200 against the first 200 (target >= 50 MB/s, ratio <= 1.2), and the peak RSS
   of this process (the service's side) and of the server's process.
2. Sessions of 1, 20 and 100 MB: save, autosave unchanged, one sketch redrawn, load.
Run: python benchmarks/storage.py [--images 2000] [--skip-sessions]
(INSPILOT_TEST_MONGODB_URI to use a server of your own).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import resource
import statistics
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

from adapters.embedded_mongo import EmbeddedMongoProcess
from adapters.mongo import MongoExperimentRepository
from benchmarks.load import tree_rss_mb
from benchmarks.study_data import picture_record
from domain.experiment import Experiment, Stage

MB = 1_000_000
# (label, schemes, canvasImage bytes per scheme)
SIZES = [("1 MB", 2, 500_000), ("20 MB", 40, 500_000), ("100 MB", 100, 1_000_000)]


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


async def write_pictures(uri: str, images: int, server_pid: int | None) -> None:
    database = f"bench_pictures_{os.getpid()}"
    repository = MongoExperimentRepository(uri, database)
    await repository.start()
    per_record, batch = 6, 204
    print(f"{images} real-size pictures (1.77 MB each) in records of {per_record}")
    header = f"{'images':>12} {'MB/s':>7} {'service RSS MB':>15} {'server RSS MB':>14}"
    print(header)
    print("-" * len(header))
    rates: list[float] = []
    peak_service = peak_server = 0.0
    try:
        written, record_no = 0, 0
        while written < images:
            began, size = 0.0, 0
            elapsed = 0.0
            target = min(written + batch, images)
            while written < target:
                record = await asyncio.to_thread(picture_record, record_no, per_record)
                record_no += 1
                began = time.perf_counter()
                await repository.add_generation(record)
                elapsed += time.perf_counter() - began
                size += sum(len(step.image or b"") for step in record.image_steps)
                written += per_record
            service = tree_rss_mb(os.getpid()) - (tree_rss_mb(server_pid) if server_pid else 0)
            server = tree_rss_mb(server_pid) if server_pid else 0.0
            peak_service, peak_server = max(peak_service, service), max(peak_server, server)
            rates.append(size / MB / elapsed)
            print(f"{written:>12} {rates[-1]:>7.1f} {service:>15.0f} {server:>14.0f}")
    finally:
        await repository.close()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        await client.drop_database(database)
        await client.close()
    ratio = rates[0] / rates[-1]
    mean = statistics.mean(rates)
    met = min(rates) >= 50 and ratio <= 1.2
    print(
        f"\nmean {mean:.1f} MB/s, slowest batch {min(rates):.1f} MB/s (target >= 50); first/last "
        f"batch time ratio {ratio:.2f} (target <= 1.2); peak RSS service {peak_service:.0f} MB, "
        f"server {peak_server:.0f} MB: {'met' if met else 'MISSED'}\n"
    )


async def run_all(uri: str, args: argparse.Namespace, server_pid: int | None) -> None:
    if args.images:
        await write_pictures(uri, args.images, server_pid)
    if not args.skip_sessions:
        await run(uri)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # 2,040: ten whole batches of 204 (34 records of 6), so first and last compare alike.
    parser.add_argument("--images", type=int, default=2040)
    parser.add_argument("--skip-sessions", action="store_true")
    args = parser.parse_args()
    uri = os.environ.get("INSPILOT_TEST_MONGODB_URI")
    if uri:
        asyncio.run(run_all(uri, args, None))
        return
    with tempfile.TemporaryDirectory(prefix="inspilot-bench-") as data_dir:
        server = EmbeddedMongoProcess(data_dir)
        with server as uri:
            print(f"embedded SecantusDB at {uri} (child process {server.pid})\n")
            asyncio.run(run_all(uri, args, server.pid))


if __name__ == "__main__":
    main()
