"""Scaling out on one SD pool: three `inspilot serve` replicas sharing the MongoDB ledger
against one replica, in the same run, on the same fakes and the same database.

Twelve participants ask rapid divergence (num 6) at once: twelve clients on one replica
(its in-process pool, the default), then three replicas with four clients each (slots,
queue and jobs in MongoDB: INSPILOT_SD_LEDGER=mongodb). Six fake SD instances render
real-size PNGs in 1.0 s, the fake text model answers in 0.3 s; the bound of a round is
3 × 0.3 + 12 × 6 / 6 × 1.0 = 12.9 s. Storage: one embedded server (standalone) started
here, shared by every replica. Targets: three replicas' wall <= 1.05 × the bound and
within 3 % of one replica's. Run: python benchmarks/replicas.py [--rounds 2]
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


async def rounds(urls: list[str], count: int) -> list[float]:
    """Each round: the twelve participants spread over the replicas' URLs."""
    walls = []
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        for round_no in range(count):
            per_replica = PARTICIPANTS // len(urls)
            started = asyncio.get_running_loop().time()
            await asyncio.gather(*(one_round(client, url, round_no, per_replica) for url in urls))
            walls.append(asyncio.get_running_loop().time() - started)
    return walls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--text-s", type=float, default=0.3)
    parser.add_argument("--image-s", type=float, default=1.0)
    args = parser.parse_args()
    bound = TEXT_CHAIN * args.text_s + PARTICIPANTS * NUM / INSTANCES * args.image_s
    data_dir = tempfile.mkdtemp(prefix="inspilot-replicas-")
    database = EmbeddedMongoProcess(str(Path(data_dir) / "db"))
    uri = database.start()
    shared = {"INSPILOT_MONGODB_URI": uri}
    scaled = {**shared, "INSPILOT_SD_LEDGER": "mongodb", "INSPILOT_JOBS_BACKEND": "mongodb"}
    results: dict[str, list[float]] = {}
    try:
        with model_fakes(INSTANCES, args.text_s, args.image_s) as (openai_url, sd_urls):
            with served_inspilot(openai_url, sd_urls, "mongodb", data_dir, shared) as (url, _):
                results["1 replica x 12 clients (in-process pool)"] = asyncio.run(
                    rounds([url], args.rounds)
                )
            with contextlib.ExitStack() as stack:
                urls = [
                    stack.enter_context(
                        served_inspilot(openai_url, sd_urls, "mongodb", data_dir, scaled)
                    )[0]
                    for _ in range(3)
                ]
                results["3 replicas x 4 clients (MongoDB ledger)"] = asyncio.run(
                    rounds(urls, args.rounds)
                )
    finally:
        database.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(
        f"{PARTICIPANTS} x rapid divergence (num {NUM}), {INSTANCES} SD instances at "
        f"{args.image_s:.1f} s (real-size PNGs), text {args.text_s:.1f} s; bound {bound:.1f} s\n"
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
