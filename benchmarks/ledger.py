"""The shared SD ledger's cost on the embedded server, standalone and as a one-node replica set.

Per deployment: p50/p99 of taking a slot (`acquire`: one read of the queue and one
`find_one_and_update`) and of giving it back (one `update_one`), uncontended; cycles/s
with clients on several replicas contending for fewer slots; and a simulation at scale
(many replicas, many fast instances whose renders are simulated by holding the slot):
slot utilisation while jobs wait, and the dispatch rate the ledger sustains. Each phase
is bounded in count and time. Replicas are separate ledger objects, each with its own
MongoDB client, in this one process (the machine has two shared cores).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.embedded_mongo import EmbeddedMongoProcess
from adapters.sd_webui.instance import Instance, parse_endpoint
from adapters.sd_webui.ledger import MongoSlotLedger, SharedLedger


def instances(count: int) -> list[Instance]:
    # Never contacted: the ledger only books them.
    return [
        Instance(parse_endpoint(f"http://10.255.0.{n % 250}:{7860 + n}"), 1) for n in range(count)
    ]


async def open_replicas(
    uri: str, database: str, replicas: int, slots: int
) -> list[MongoSlotLedger]:
    ledgers = []
    for _ in range(replicas):
        ledger = MongoSlotLedger(
            instances(slots),
            ledger=SharedLedger(lambda: uri, database, lease_s=15.0),
            queue_max=100_000,
            cooldown_base_s=2.0,
            cooldown_max_s=60.0,
            probe_grace_s=5.0,
        )
        await ledger.start()
        ledgers.append(ledger)
    for instance in ledgers[0].instances:
        ledgers[0].mark_up(instance)
    await asyncio.gather(*ledgers[0]._tasks)
    for ledger in ledgers:
        await ledger._refresh()
    return ledgers


async def close(ledgers: list[MongoSlotLedger]) -> None:
    for ledger in ledgers:
        await ledger.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def cost(uri: str, cycles: int) -> tuple[list[float], list[float]]:
    [ledger] = await open_replicas(uri, "bench_cost", 1, 6)
    takes, gives = [], []
    try:
        for _ in range(cycles):
            began = time.perf_counter()
            instance = await ledger.acquire(time.monotonic() + 10)
            took = time.perf_counter()
            lease = ledger._held[instance].pop()
            await ledger.docs.give_back(instance.url, lease, None)
            instance.busy -= 1
            takes.append(took - began)
            gives.append(time.perf_counter() - took)
    finally:
        await close([ledger])
    return takes, gives


async def contended(
    uri: str, database: str, replicas: int, clients: int, slots: int, hold_s: float, run_s: float
) -> tuple[int, float, float]:
    """(cycles, wall, utilisation): clients spread over replicas loop acquire, hold, release."""
    ledgers = await open_replicas(uri, database, replicas, slots)
    held = 0.0
    cycles = 0
    stop_at = time.monotonic() + run_s

    async def client(ledger: MongoSlotLedger) -> None:
        nonlocal held, cycles
        while time.monotonic() < stop_at:
            instance = await ledger.acquire(time.monotonic() + 60)
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
        await close(ledgers)
    return cycles, wall, held / (slots * wall) if hold_s else 0.0


async def deployment(name: str, replica_set: str, args: argparse.Namespace) -> None:
    data_dir = tempfile.mkdtemp(prefix="inspilot-ledger-bench-")
    server = EmbeddedMongoProcess(data_dir, replica_set=replica_set)
    uri = server.start()
    try:
        takes, gives = await cost(uri, args.cycles)
        print(f"\n{name}")
        print(
            f"  acquire p50 {statistics.median(takes) * 1000:.2f} ms  p99 "
            f"{pct(takes, 0.99) * 1000:.2f} ms;  give back p50 "
            f"{statistics.median(gives) * 1000:.2f} ms  p99 {pct(gives, 0.99) * 1000:.2f} ms  "
            f"({args.cycles} cycles, one client)"
        )
        cycles, wall, _ = await contended(uri, "bench_contended", 4, 20, 6, 0.0, args.run_s)
        print(f"  contended: 20 clients on 4 replicas, 6 slots: {cycles / wall:.0f} cycles/s")
        cycles, wall, used = await contended(
            uri, "bench_scale", args.replicas, args.replicas * 15, args.instances, 0.05, args.run_s
        )
        print(
            f"  at scale: {args.replicas} replicas x 15 clients, {args.instances} instances of "
            f"0.05 s: {cycles / wall:.0f} dispatches/s, slot utilisation {used:.1%} "
            f"(full use needs {args.instances / 0.05:.0f}/s)"
        )
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--run-s", type=float, default=4.0)
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--instances", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(deployment("embedded, standalone (polling <= 50 ms)", "", args))
    asyncio.run(deployment("embedded, one-node replica set (change stream)", "rs0", args))


if __name__ == "__main__":
    main()
