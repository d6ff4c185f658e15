"""The shared SD ledger's cost on the embedded server, standalone and as a one-node replica set.

Per deployment, side by side in one run:
- cost: p50/p99 of taking a slot (`acquire`: one read of the queue, one
  `find_one_and_update`) and of giving it back (`release` with nobody waiting: one
  update, one read of the queue), one client, uncontended;
- contended: 20 clients on 4 replicas looping on 6 slots with no render: cycles/s;
- at scale: `--replicas` replicas (spread over `--processes` processes, each with its
  own event loop and one MongoDB client per replica) with 15 clients each, on
  `--instances` instances whose renders are simulated by holding the slot for each of
  `--render-s`; clients outnumber slots, so jobs always wait. Slot utilisation is the
  time slots were held over slots x wall; the dispatch rate is slots handed out per
  second, against what full use would need (instances / render time).
Every phase is bounded in count and time. Run under the shared lock:
    flock /work/notes/bench.lock python benchmarks/ledger.py
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.embedded_mongo import EmbeddedMongoProcess
from adapters.sd_webui.instance import Instance, parse_endpoint
from adapters.sd_webui.ledger import MongoSlotLedger, SharedLedger

CLIENTS_PER_REPLICA = 15


def instances(count: int) -> list[Instance]:
    # Never contacted: the ledger only books them.
    return [
        Instance(parse_endpoint(f"http://10.255.{n // 250}.{n % 250}:7860"), 1)
        for n in range(count)
    ]


async def open_ledger(uri: str, database: str, slots: int) -> MongoSlotLedger:
    ledger = MongoSlotLedger(
        instances(slots),
        ledger=SharedLedger(lambda: uri, database, lease_s=15.0),
        queue_max=100_000,
        cooldown_base_s=2.0,
        cooldown_max_s=60.0,
        probe_grace_s=5.0,
    )
    await ledger.start()
    return ledger


async def bring_up(uri: str, database: str, slots: int) -> None:
    """Every instance healthy in the shared documents, as a first probe would leave it."""
    ledger = await open_ledger(uri, database, slots)
    for instance in ledger.instances:
        ledger.mark_up(instance)
    await asyncio.gather(*ledger._tasks)
    await ledger.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def cost(uri: str, cycles: int) -> tuple[list[float], list[float]]:
    await bring_up(uri, "bench_cost", 6)
    ledger = await open_ledger(uri, "bench_cost", 6)
    takes, gives = [], []
    try:
        for _ in range(cycles):
            began = time.perf_counter()
            instance = await ledger.acquire(time.monotonic() + 10)
            took = time.perf_counter()
            instance.busy -= 1
            await ledger.pass_on(instance, ledger._held[instance].pop())
            takes.append(took - began)
            gives.append(time.perf_counter() - took)
    finally:
        await ledger.stop()
    return takes, gives


async def run_replicas(
    uri: str, database: str, replicas: int, clients: int, slots: int, hold_s: float, run_s: float
) -> tuple[int, float, float]:
    """(cycles, seconds slots were held, wall): clients loop acquire, hold, release."""
    ledgers = [await open_ledger(uri, database, slots) for _ in range(replicas)]
    held = 0.0
    cycles = 0
    stop_at = time.monotonic() + run_s

    async def client(ledger: MongoSlotLedger) -> None:
        nonlocal held, cycles
        while time.monotonic() < stop_at:
            instance = await ledger.acquire(time.monotonic() + 120)
            began = time.monotonic()
            if hold_s:
                await asyncio.sleep(hold_s)
            ledger.release(instance, 0.0)
            held += time.monotonic() - began
            cycles += 1

    started = time.monotonic()
    try:
        await asyncio.gather(*(client(ledgers[n % replicas]) for n in range(clients)))
        wall = time.monotonic() - started
    finally:
        for ledger in ledgers:
            await ledger.stop()
    return cycles, held, wall


def _process(args: tuple[Any, ...], ready: Any, go: Any, results: Any) -> None:
    """One benchmark process: its share of the replicas on its own event loop."""
    logging.basicConfig(level=logging.ERROR)
    uri, database, replicas, slots, hold_s, run_s = args
    ready.put(1)
    go.wait(120)
    results.put(
        asyncio.run(
            run_replicas(
                uri, database, replicas, replicas * CLIENTS_PER_REPLICA, slots, hold_s, run_s
            )
        )
    )


def at_scale(
    uri: str, database: str, replicas: int, processes: int, slots: int, hold_s: float, run_s: float
) -> tuple[float, float]:
    """(dispatches/s, utilisation) of replicas spread over processes."""
    asyncio.run(bring_up(uri, database, slots))
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    shares = [replicas // processes + (n < replicas % processes) for n in range(processes)]
    workers = [
        context.Process(
            target=_process,
            args=((uri, database, share, slots, hold_s, run_s), ready, go, results),
            daemon=True,
        )
        for share in shares
        if share
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=120)
    go.set()
    outcome = [results.get(timeout=run_s + 180) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    cycles = sum(item[0] for item in outcome)
    held = sum(item[1] for item in outcome)
    wall = max(item[2] for item in outcome)
    return cycles / wall, held / (slots * wall)


def deployment(name: str, replica_set: str, args: argparse.Namespace) -> None:
    data_dir = tempfile.mkdtemp(prefix="inspilot-ledger-bench-")
    server = EmbeddedMongoProcess(data_dir, replica_set=replica_set)
    uri = server.start()
    try:
        takes, gives = asyncio.run(cost(uri, args.cycles))
        print(f"\n{name}", flush=True)
        print(
            f"  acquire p50 {statistics.median(takes) * 1000:.2f} ms  p99 "
            f"{pct(takes, 0.99) * 1000:.2f} ms;  release p50 "
            f"{statistics.median(gives) * 1000:.2f} ms  p99 {pct(gives, 0.99) * 1000:.2f} ms  "
            f"({args.cycles} cycles, one client)",
            flush=True,
        )
        asyncio.run(bring_up(uri, "bench_contended", 6))
        cycles, _, wall = asyncio.run(
            run_replicas(uri, "bench_contended", 4, 20, 6, 0.0, args.run_s)
        )
        print(f"  contended: 20 clients on 4 replicas, 6 slots: {cycles / wall:.0f} cycles/s")
        for n, render_s in enumerate(args.render_s):
            rate, used = at_scale(
                uri,
                f"bench_scale_{n}",
                args.replicas,
                args.processes,
                args.instances,
                render_s,
                args.run_s,
            )
            print(
                f"  at scale: {args.replicas} replicas x {CLIENTS_PER_REPLICA} clients in "
                f"{args.processes} processes, {args.instances} instances of {render_s} s: "
                f"{rate:.0f} dispatches/s (full use needs {args.instances / render_s:.0f}/s), "
                f"slot utilisation {used:.1%}",
                flush=True,
            )
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--run-s", type=float, default=6.0)
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--render-s", type=float, nargs="+", default=[0.05, 0.5, 1.0])
    parser.add_argument("--only", choices=["standalone", "replica-set"], default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.only != "replica-set":
        deployment("embedded, standalone (polling <= 50 ms)", "", args)
    if args.only != "standalone":
        deployment("embedded, one-node replica set (change stream)", "rs0", args)


if __name__ == "__main__":
    main()
