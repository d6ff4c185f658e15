"""How close the SD pool gets to the ideal makespan, with all, one dead and one slow instance."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.sd_webui import SdWebUIImageGenerator
from application.ports import ImageRequest
from tests.fakes.sdapi_server import FakeSdServer, fake_sd_instances

PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Outcome:
    wall_s: float
    bound_s: float
    waits_s: list[float]
    blanks: int
    failures: int
    per_instance: list[int]


def makespan_bound(jobs: int, latencies: list[float]) -> float:
    """The shortest schedule of equal jobs on instances of these latencies (no preemption)."""
    candidates = sorted({latency * n for latency in latencies for n in range(1, jobs + 1)})
    for candidate in candidates:
        if sum(math.floor(candidate / latency + 1e-9) for latency in latencies) >= jobs:
            return candidate
    raise ValueError("no instance")


async def run(servers: list[FakeSdServer], jobs: int, dead: FakeSdServer | None) -> Outcome:
    generator = SdWebUIImageGenerator([server.url for server in servers])
    await generator.start()
    try:
        if dead is not None:
            # Down after start: the pool still believes in it, as when one crashes mid-study.
            dead.down()
        submitted = time.monotonic()
        results = await asyncio.gather(
            *(generator.generate(ImageRequest(prompt=f"job {n}")) for n in range(jobs)),
            return_exceptions=True,
        )
        wall = time.monotonic() - submitted
    finally:
        await generator.close()
    started = {
        prompt: at
        for server in servers
        for prompt, at in zip(server.counters.prompts, server.counters.received_at, strict=True)
    }
    waits = [started[f"job {n}"] - submitted for n in range(jobs) if f"job {n}" in started]
    failures = [result for result in results if isinstance(result, BaseException)]
    images = [result for result in results if not isinstance(result, BaseException)]
    blanks = sum(1 for image in images if not image.data.startswith(PNG))
    live = [server for server in servers if server is not dead]
    latencies = [server.knobs.latency_s for server in live]
    return Outcome(
        wall_s=wall,
        bound_s=makespan_bound(jobs, latencies),
        waits_s=waits,
        blanks=blanks,
        failures=len(failures),
        per_instance=[server.counters.renders for server in servers],
    )


def report(title: str, outcome: Outcome) -> None:
    waits = sorted(outcome.waits_s)
    p50 = statistics.median(waits)
    p95 = waits[min(len(waits) - 1, math.ceil(0.95 * len(waits)) - 1)]
    print(f"\n{title}")
    print(
        f"  wall {outcome.wall_s:.2f}s   bound {outcome.bound_s:.2f}s   "
        f"utilization {outcome.bound_s / outcome.wall_s:.3f}"
    )
    print(f"  queue wait p50 {p50:.2f}s  p95 {p95:.2f}s")
    print(
        f"  blank images {outcome.blanks}   failures {outcome.failures}   "
        f"renders per instance {outcome.per_instance}"
    )


async def scenario(kind: str, jobs: int, count: int, latency: float) -> Outcome:
    with fake_sd_instances(count, latency_s=latency) as servers:
        dead = servers[0] if kind == "dead" else None
        if kind == "slow":
            servers[0].knobs.latency_s = 3 * latency
        return await run(servers, jobs, dead)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-k", "--jobs", type=int, default=72)
    parser.add_argument("-m", "--instances", type=int, default=6)
    parser.add_argument("-l", "--latency", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    k, m, latency = args.jobs, args.instances, args.latency
    print(f"K={k} jobs, M={m} fake instances, L={latency}s per image")
    all_up = asyncio.run(scenario("all", k, m, latency))
    report(f"all {m} up (bound ceil(K/M)*L)", all_up)
    dead = asyncio.run(scenario("dead", k, m, latency))
    report(f"one of {m} dies after start (bound ceil(K/{m - 1})*L)", dead)
    slow = asyncio.run(scenario("slow", k, m, latency))
    report("one instance 3x slower (bound: best schedule of equal jobs)", slow)
    ok = (
        all_up.bound_s / all_up.wall_s >= 0.95
        and dead.blanks == dead.failures == 0
        and dead.bound_s / dead.wall_s >= 0.9
    )
    print(
        "\ntargets (util >= 0.95 all up; 0 blank, 0 failed, util >= 0.9 one dead):",
        "met" if ok else "MISSED",
    )


if __name__ == "__main__":
    main()
