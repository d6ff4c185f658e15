"""Attribution at study scale, on the embedded default storage.

The store first holds a study's worth of real-size pictures (5,004 SDXL 1024 × 576 PNGs,
benchmarks/study_data.py), then 5,000 saved sketches (500 participants × 10 schemes, each
with its own sketch and notes) and 2,000 unattributed generation records. Measured, interleaved, on
one run: the lookups `/generate` makes before a pipeline runs (type 1: one sketch,
type 2: six sketches, type 3: notes; target p50 <= 2 ms) and the look-again a save makes;
then `/generate` type 1 end to end on the demo models, served on loopback, with and
without a username (the difference is what attribution adds to the reply).
Run: python benchmarks/attribution.py [--participants 500] [--rounds 300] [--study-images 5004]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from adapters.demo_images import render_png
from adapters.embedded_mongo import EmbeddedMongoProcess
from adapters.mongo import MongoExperimentRepository
from adapters.system_clock import SystemClock
from application.attribution import Attributor
from benchmarks.study_data import STUDY_IMAGES, study_directory
from domain.attribution import Evidence
from domain.experiment import Experiment, Stage
from domain.generation import GenerationRecord, Outcome, Pipeline
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fakes.uvicorn_thread import served

SCHEMES = 10
DATABASE = "inspilot"  # the study's pictures are written there too
SKETCH_BYTES = 20_000


def sketch(rng: random.Random) -> str:
    return "data:image/png;base64," + base64.b64encode(rng.randbytes(SKETCH_BYTES)).decode()


def scheme(rng: random.Random, owner: int, n: int) -> dict[str, Any]:
    notes = [{"text": f"{owner}号的第{n}个想法", "position": {"x": 1, "y": 2}}]
    return {"name": f"方案{n}", "canvasImage": sketch(rng), "paths": [], "texts": notes}


async def prefill(repository: MongoExperimentRepository, participants: int) -> list[list[Any]]:
    rng = random.Random(7)
    saved: list[list[Any]] = []
    now = datetime.now(UTC)
    for owner in range(participants):
        username = f"p{owner:04d}"
        schemes = tuple(scheme(rng, owner, n) for n in range(SCHEMES))
        await repository.get_or_create(Experiment(username=username, created_at=now))
        await repository.save(
            Experiment(
                username=username,
                current_stage=Stage.RAPID_DIVERGENCE,
                design_task="厨房",
                schemes={
                    Stage.RAPID_DIVERGENCE: schemes,
                    Stage.DEEP_DIVERGENCE: (),
                    Stage.CONVERGENCE: (),
                },
                updated_at=now,
            )
        )
        saved.append(list(schemes))
    for _ in range(2000):
        evidence = Evidence.of(sketches=[sketch(rng)])
        record = GenerationRecord(
            Pipeline.DEEP_DIVERGENCE, {}, now, now, Outcome.SUCCEEDED, evidence=evidence
        )
        await repository.add_generation(record)
    return saved


async def timed(work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return (time.perf_counter() - started) * 1000


def line(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{label:<44} p50 {statistics.median(ordered):6.2f} ms   p99 {p99:6.2f} ms"


async def lookups(uri: str, participants: int, rounds: int) -> None:
    repository = MongoExperimentRepository(uri, DATABASE)
    await repository.start()
    try:
        started = time.perf_counter()
        saved = await prefill(repository, participants)
        print(
            f"prefill: {participants * SCHEMES} saved sketches, 2,000 unattributed records "
            f"in {time.perf_counter() - started:.1f} s\n"
        )
        attributor = Attributor(repository, SystemClock())
        rng = random.Random(11)
        kinds: dict[str, Callable[[], Evidence]] = {
            "named (no lookup)": lambda: Evidence(),
            "type 1: one sketch": lambda: Evidence.of(
                sketches=[rng.choice(rng.choice(saved))["canvasImage"]]
            ),
            "type 2: six sketches": lambda: Evidence.of(
                sketches=[s["canvasImage"] for s in rng.choice(saved)[:6]]
            ),
            "type 3: notes of one scheme": lambda: Evidence.of(
                texts=[[t["text"] for t in rng.choice(rng.choice(saved))["texts"]]]
            ),
            "unknown sketch (nobody)": lambda: Evidence.of(sketches=[sketch(rng)]),
            "a save looks again (10 sketches)": lambda: Evidence.of_schemes(rng.choice(saved)),
        }
        samples: dict[str, list[float]] = {label: [] for label in kinds}
        for _ in range(rounds):
            for label, make in kinds.items():
                evidence = make()
                if label.startswith("a save"):
                    samples[label].append(await timed(lambda e=evidence: attributor.revisit(e)))
                elif label.startswith("named"):
                    samples[label].append(
                        await timed(lambda e=evidence: attributor.resolve("p0001", None, e))
                    )
                else:
                    samples[label].append(await timed(lambda e=evidence: attributor.by_evidence(e)))
        print("lookups through the repository, interleaved:")
        for label, values in samples.items():
            print("  " + line(label, values))
    finally:
        await repository.close()


def end_to_end(uri: str, rounds: int, pause_s: float) -> None:
    settings = Settings.load(
        {
            "INSPILOT_STORAGE_BACKEND": "mongodb",
            "INSPILOT_MONGODB_URI": uri,
            "INSPILOT_MONGODB_DATABASE": DATABASE,
        }
    )
    image = "data:image/png;base64," + base64.b64encode(render_png(64, 48, 5)).decode()
    prompts = {"designTask": "厨房", "designTexts": ["想法"], "designImage": image, "schemeId": 0}
    named = {"appid": 0, "type": 1, "username": "p0001", "prompts": prompts}
    unnamed = {"appid": 0, "type": 1, "prompts": prompts}
    with served(create_app(build_container(settings))) as url, httpx.Client() as client:
        for body in (named, unnamed):  # warm-up
            client.post(f"{url}/generate", json=body)
        times: dict[str, list[float]] = {"named": [], "attributed": []}
        pair = [("named", named), ("attributed", unnamed)]
        for round_number in range(rounds):
            # Alternate which goes first: the second of a pair meets the first's record
            # being written in the background.
            for label, body in pair if round_number % 2 else pair[::-1]:
                time.sleep(pause_s)  # the previous record is written meanwhile
                started = time.perf_counter()
                reply = client.post(f"{url}/generate", json=body)
                times[label].append((time.perf_counter() - started) * 1000)
                assert reply.status_code == 200, reply.text
    print(
        f"\n/generate type 1 on the demo models, served on loopback, interleaved, "
        f"{pause_s * 1000:.0f} ms apart:"
    )
    for label, values in times.items():
        print("  " + line(label, values))
    added = statistics.median(times["attributed"]) - statistics.median(times["named"])
    ratio = statistics.median(times["attributed"]) / statistics.median(times["named"])
    print(f"  attribution adds {added:.2f} ms at the median (x{ratio:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--study-images", type=int, default=STUDY_IMAGES)
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=100,
        help="between /generate requests; 0 makes each lookup queue behind the previous "
        "request's record write on the database",
    )
    args = parser.parse_args()
    with study_directory("inspilot-attribution-", args.study_images, "embedded") as data_dir:
        server = EmbeddedMongoProcess(data_dir)
        with server as uri:
            print(f"embedded SecantusDB at {uri} (child process {server.pid})\n")
            asyncio.run(lookups(uri, args.participants, args.rounds))
            end_to_end(uri, max(args.rounds // 3, 30), args.pause_ms / 1000)
            end_to_end(uri, max(args.rounds // 3, 30), 0.0)


if __name__ == "__main__":
    main()
