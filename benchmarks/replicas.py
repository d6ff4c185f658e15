"""Scaling out on one SD pool: three `inspilot serve` replicas sharing the MongoDB ledger
against one replica, side by side in one run, on the same fakes and the same database.

Twelve participants ask rapid divergence (num 6) at once: twelve clients on one replica
(its in-process pool, the default), or three replicas with four clients each (slots,
queue and jobs in MongoDB: INSPILOT_SD_LEDGER=mongodb). All four services run for the
whole run; each round measures both, in alternating order. Six fake SD instances render
real-size PNGs in 1.0 s, the fake text model answers in 0.3 s; the bound of a round is
3 × 0.3 + 12 × 6 / 6 × 1.0 = 12.9 s. Storage: one embedded server started here
(standalone: the ledger polls; `--replica-set`: it wakes from a change stream), shared
by every replica. Targets: three replicas' wall <= 1.05 × the bound and within 3 % of
one replica's. Run: python benchmarks/replicas.py [--rounds 3] [--replica-set]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from adapters.embedded_mongo import EmbeddedMongoProcess
from benchmarks.fakes_process import model_fakes, served_inspilot
from benchmarks.load import INSTANCES, NUM, PARTICIPANTS, TEXT_CHAIN, one_round


async def rounds(configurations: dict[str, list[str]], count: int) -> dict[str, list[float]]:
    """Each round measures every configuration once, in alternating order (a drift in the
    shared machine's load falls on both); the twelve participants are spread over the
    configuration's replicas."""
    walls: dict[str, list[float]] = {name: [] for name in configurations}
    timeout = aiohttp.ClientTimeout(total=300)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(timeout=timeout) as client:
        for round_no in range(count):
            names = list(configurations)
            for turn, name in enumerate(names if round_no % 2 == 0 else names[::-1]):
                urls = configurations[name]
                per_replica = PARTICIPANTS // len(urls)
                task_no = round_no * len(names) + turn  # a prompt never asked before
                started = loop.time()
                await asyncio.gather(
                    *(one_round(client, url, task_no, per_replica) for url in urls)
                )
                walls[name].append(loop.time() - started)
                print(f"round {round_no + 1}: {name} {walls[name][-1]:.2f} s", flush=True)
    return walls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--text-s", type=float, default=0.3)
    parser.add_argument("--image-s", type=float, default=1.0)
    parser.add_argument(
        "--replica-set",
        action="store_true",
        help="the embedded server as a one-node replica set: the ledger wakes from a change "
        "stream instead of polling",
    )
    args = parser.parse_args()
    bound = TEXT_CHAIN * args.text_s + PARTICIPANTS * NUM / INSTANCES * args.image_s
    data_dir = tempfile.mkdtemp(prefix="inspilot-replicas-")
    database = EmbeddedMongoProcess(
        str(Path(data_dir) / "db"), replica_set="rs0" if args.replica_set else ""
    )
    uri = database.start()
    shared = {"INSPILOT_MONGODB_URI": uri}
    scaled = {**shared, "INSPILOT_SD_LEDGER": "mongodb", "INSPILOT_JOBS_BACKEND": "mongodb"}
    try:
        with (
            model_fakes(INSTANCES, args.text_s, args.image_s) as (openai_url, sd_urls),
            contextlib.ExitStack() as stack,
        ):

            def serve(extra: dict[str, str]) -> str:
                served = served_inspilot(openai_url, sd_urls, "mongodb", data_dir, extra)
                return stack.enter_context(served)[0]

            configurations = {
                "1 replica x 12 clients (in-process pool)": [serve(shared)],
                "3 replicas x 4 clients (MongoDB ledger)": [serve(scaled) for _ in range(3)],
            }
            results = asyncio.run(rounds(configurations, args.rounds))
    finally:
        database.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(
        f"{PARTICIPANTS} x rapid divergence (num {NUM}), {INSTANCES} SD instances at "
        f"{args.image_s:.1f} s (real-size PNGs), text {args.text_s:.1f} s; bound {bound:.1f} s; "
        f"{'one-node replica set (change stream)' if args.replica_set else 'standalone (polling)'}"
        "\n"
    )
    for name, walls in results.items():
        shown = "  ".join(f"{wall:.2f} s ({wall / bound:.3f})" for wall in walls)
        print(f"{name:<42} {shown}")
    one, three = (min(walls) for walls in results.values())
    print(f"\nthree replicas / one replica (best rounds): {three / one:.3f}")
    met = three / bound <= 1.05 and three / one <= 1.03
    print(f"targets (<= 1.05 x bound, within 3 % of one replica): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
