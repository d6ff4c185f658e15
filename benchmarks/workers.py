"""`inspilot serve --workers 2` against one worker: GET /ping and POST /paint/start with 32
concurrent clients, on the embedded default storage, side by side in one run.

Both services run for the whole run, each on its own embedded database; the rounds
alternate which one is measured first (1-2, 2-1, ...), so a drift in the machine's load
falls on both. The load comes from Debian's `wrk` in a process of its own (one thread,
32 connections, the /paint/start body from a Lua script), and the CPU both sides use is
read from /proc: the client's share, the measured service's, and the idle one's. On a
machine of 2 cores the client and the database share the cores with the workers, so two
workers cannot double anything: the figures say how close they get.
Run: python benchmarks/workers.py [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fakes_process import free_port  # noqa: E402 - after the path is set

CLIENTS = 32
TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
# The legacy contract's body (docs/contract.md): one of 500 usernames, started before.
START_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"username": "w%d"}', counter % 500)
  return wrk.format("POST", "/paint/start", {["Content-Type"] = "application/json"}, body)
end
"""


def _cpu_ticks() -> dict[int, tuple[int, int, bool]]:
    """pid -> (parent pid, user + system ticks, is the embedded database) of every live
    process."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            database = b"embedded_mongo_child" in (stat.parent / "cmdline").read_bytes()
            found[int(stat.parent.name)] = (
                int(fields[1]),
                int(fields[11]) + int(fields[12]),
                database,
            )
    return found


def tree_cpu_s(root: int) -> tuple[float, float]:
    """CPU seconds used so far by `root` and every live descendant (workers, database),
    and by the database alone."""
    ticks = _cpu_ticks()
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, (parent, _, _) in ticks.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    total = sum(ticks[pid][1] for pid in tree if pid in ticks)
    database = sum(ticks[pid][1] for pid in tree if pid in ticks and ticks[pid][2])
    return total / TICK, database / TICK


@dataclass
class Measured:
    rate: float
    errors: int
    client_cores: float
    service_cores: float
    database_cores: float
    idle_cores: float


def wrk(url: str, seconds: int, script: Path | None) -> tuple[float, int, float]:
    """Requests per second, non-2xx or socket errors, and the client's CPU seconds."""
    command = ["wrk", "-t1", f"-c{CLIENTS}", f"-d{seconds}s", "--timeout", "5s"]
    if script is not None:
        command += ["-s", str(script)]
    before = os.times()
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    after = os.times()
    client_s = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(found.group(1))
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(n) for n in found.groups())
    return (float(rate.group(1)) if rate else 0.0), errors, client_s


@contextlib.contextmanager
def served(workers: int, data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`inspilot serve --workers N` on the embedded default storage, in its own group."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "INSPILOT_DATA_DIR": str(data_dir),
        "INSPILOT_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ping", timeout=1).text == "pong":
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"inspilot serve --workers {workers} did not start")
            time.sleep(0.2)
        yield url, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def measure(
    url: str, service: int, idle: int, seconds: int, script: Path | None, path: str
) -> Measured:
    (service_before, database_before), (idle_before, _) = tree_cpu_s(service), tree_cpu_s(idle)
    started = time.monotonic()
    rate, errors, client_s = wrk(f"{url}{path}", seconds, script)
    wall = time.monotonic() - started
    (service_after, database_after), (idle_after, _) = tree_cpu_s(service), tree_cpu_s(idle)
    return Measured(
        rate=rate,
        errors=errors,
        client_cores=client_s / wall,
        service_cores=(service_after - service_before) / wall,
        database_cores=(database_after - database_before) / wall,
        idle_cores=(idle_after - idle_before) / wall,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("needs wrk (Debian package wrk)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="inspilot-workers-"))
    script = work / "start.lua"
    script.write_text(START_LUA)
    endpoints = {"/ping": None, "/paint/start": script}
    results: dict[tuple[int, str], list[Measured]] = {}
    load_before = os.getloadavg()[0]
    try:
        with served(1, work / "one") as one, served(2, work / "two") as two:
            services = {1: one, 2: two}
            for url, _ in services.values():  # warm-up: the 500 sessions exist afterwards
                wrk(f"{url}/paint/start", 2, script)
            for round_no in range(args.rounds):
                order = (1, 2) if round_no % 2 == 0 else (2, 1)
                for workers in order:
                    url, process = services[workers]
                    idle = services[3 - workers][1].pid
                    for path, body in endpoints.items():
                        got = measure(url, process.pid, idle, args.seconds, body, path)
                        results.setdefault((workers, path), []).append(got)
                        print(
                            f"round {round_no + 1} workers={workers} {path:<12} "
                            f"{got.rate:>7.0f} req/s  errors {got.errors}  cores: service "
                            f"{got.service_cores:.2f} (database {got.database_cores:.2f}), "
                            f"client {got.client_cores:.2f}, "
                            f"other service {got.idle_cores:.2f}",
                            flush=True,
                        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{CLIENTS} clients (wrk, 1 thread), {args.rounds} rounds x {args.seconds} s per "
        f"endpoint, embedded default storage, {CORES} cores; load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after\n"
    )
    print(f"{'median':<12}{'/ping req/s':>14}{'/paint/start req/s':>20}{'client cores':>14}")
    medians = {}
    for workers in (1, 2):
        ping = statistics.median(m.rate for m in results[(workers, "/ping")])
        start = statistics.median(m.rate for m in results[(workers, "/paint/start")])
        every = results[(workers, "/ping")] + results[(workers, "/paint/start")]
        client = statistics.median(m.client_cores for m in every)
        service = statistics.median(m.service_cores for m in every)
        medians[workers] = (ping, start)
        print(
            f"{workers} worker{'s' if workers > 1 else ' ':<5}{ping:>14.0f}{start:>20.0f}"
            f"{client:>14.2f}   (service {service:.2f} cores, median of both)"
        )
    (ping1, start1), (ping2, start2) = medians[1], medians[2]
    print(f"{'2 / 1':<12}{ping2 / ping1:>13.2f}x{start2 / start1:>19.2f}x")
    every = [m for measured in results.values() for m in measured]
    share = statistics.median(m.client_cores for m in every) / CORES
    print(f"\nthe client's share of the machine: {share:.0%} (median of every measurement)")
    errors = sum(m.errors for m in every)
    print(f"errors (non-2xx, socket): {errors}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
