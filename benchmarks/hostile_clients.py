"""Slow-body clients and event-stream subscribers against `inspilot serve`, side by side.

Opens `--slow` clients that send a /paint/save body one byte every 5 s and `--sse`
subscribers spread over running jobs (at most INSPILOT_SSE_PER_JOB per job). A separate
process pings GET /ping on a new connection every 50 ms (each at most 5 s) throughout;
its p50 / p99 / max are reported in three phases: idle (1 s before the load), arriving
(until every client connected or was refused, at most 60 s) and open (`--hold` s with
everything open, while a participant's /generate runs). For the code of `--before`
(default: main before the backlog fix; '' for this tree alone) and this tree, side by
side, on the default embedded storage, loopback only. Bounded: about a minute per server.
Target: /ping p99 once open under 100 ms, /generate 200.
Run: python benchmarks/hostile_clients.py [--slow 5000] [--sse 5000] [--hold 15] [--before REV]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fakes_process import free_port  # noqa: E402 - after the path is set

SAVE_HEAD = (
    b"POST /paint/save HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n{"
)
PER_JOB = 64  # the default INSPILOT_SSE_PER_JOB
USERS_PER_JOB_BATCH = 4  # the default INSPILOT_JOBS_PER_USER


def start_service(tree: Path, data_dir: str, image_s: float) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "INSPILOT_DATA_DIR": data_dir,
        "INSPILOT_LOG_LEVEL": "warning",
        # Jobs stay running while they are followed; a /generate takes this long too.
        "INSPILOT_DEMO_IMAGE_LATENCY_S": str(image_s),
        "INSPILOT_JOB_TTL_S": "600",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port)],
        cwd=tree,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).text == "pong":
                return process, port
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit(f"server in {tree} did not start")


SIGTERM_WAIT_S = 40.0
PING_TIMEOUT_S = 5.0
PING_GAP_S = 0.05
IDLE_S = 1.0
"""Pings before any load: the baseline."""
MOST_PINGS = 3000
ARRIVAL_LIMIT_S = 60.0
"""The most the clients get to connect; what has not by then is counted as not open."""


def stop_service(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM, then the seconds until the process ended (killed after SIGTERM_WAIT_S)."""
    began = time.monotonic()
    process.terminate()
    try:
        process.wait(timeout=SIGTERM_WAIT_S)
    except subprocess.TimeoutExpired:
        pass
    took = time.monotonic() - began
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return took


class Tally:
    """Clients that connected or were refused; `settled` once every one has done either."""

    def __init__(self, wanted: int) -> None:
        self.counts = {"open": 0, "refused": 0}
        self._wanted = wanted
        self.settled = asyncio.Event()
        if wanted == 0:
            self.settled.set()

    def __getitem__(self, outcome: str) -> int:
        return self.counts[outcome]

    def __setitem__(self, outcome: str, count: int) -> None:
        self.counts[outcome] = count
        if sum(self.counts.values()) >= self._wanted:
            self.settled.set()


async def slow_body(port: int, stop: asyncio.Event, counts: Tally) -> None:
    """One byte every 5 s, until told to stop or the server cuts it."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        counts["refused"] += 1
        return
    try:
        writer.write(SAVE_HEAD)
        counts["open"] += 1
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)
            writer.write(b" ")
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def subscriber(port: int, job_id: str, stop: asyncio.Event, counts: Tally) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        counts["refused"] += 1
        return
    try:
        writer.write(f"GET /api/v1/jobs/{job_id}/events HTTP/1.1\r\nHost: b\r\n\r\n".encode())
        status = await asyncio.wait_for(reader.readline(), 30)
        counts["open" if b" 200 " in status else "refused"] += 1
        await stop.wait()
    except (OSError, TimeoutError):
        counts["refused"] += 1
    finally:
        writer.close()


PINGER = """
import json, signal, socket, sys, time
stopped = []
signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
port, hold_s, timeout_s, gap_s, most = (
    int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
)
request = b"GET /ping HTTP/1.1\\r\\nHost: b\\r\\nConnection: close\\r\\n\\r\\n"
pings, end = [], time.monotonic() + hold_s
while not stopped and len(pings) < most and time.monotonic() < end:
    began = time.monotonic()
    reply = b""
    try:
        # A new connection each time, as a new participant's browser makes: the accept
        # queue is measured too, not only a kept-alive socket.
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.settimeout(max(0.01, began + timeout_s - time.monotonic()))
            sock.sendall(request)
            while chunk := sock.recv(4096):
                reply += chunk
                if time.monotonic() > began + timeout_s:
                    break
    except OSError:
        pass
    pings.append([began, time.monotonic() - began, reply.endswith(b"pong")])
    time.sleep(gap_s)
print(json.dumps(pings))
"""


class Pinger:
    """/ping from a process of its own (the load client's busy loop is not measured), a
    new connection every PING_GAP_S, each at most PING_TIMEOUT_S, for at most `hold_s`."""

    def __init__(self, port: int, hold_s: float, most: int) -> None:
        self._hold_s = hold_s
        self._process = subprocess.Popen(
            [sys.executable, "-c", PINGER, str(port), str(hold_s), str(PING_TIMEOUT_S),
             str(PING_GAP_S), str(most)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    def pings(self) -> list[tuple[float, float, bool]]:
        """Stops it; (started at, on the shared monotonic clock; seconds; answered `pong`)."""
        self._process.terminate()
        out, _ = self._process.communicate(timeout=self._hold_s + PING_TIMEOUT_S + 30)
        return [(began, took, ok) for began, took, ok in json.loads(out)]


def figures(pings: list[tuple[float, float, bool]]) -> dict[str, Any]:
    """p50, p99 and max of a phase's pings (an unanswered ping counts as its time spent)."""
    if not pings:
        return {"count": 0, "failed": 0, "p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    took = sorted(seconds * 1000 for _, seconds, _ in pings)
    return {
        "count": len(took),
        "failed": sum(not ok for *_, ok in pings),
        "p50_ms": statistics.median(took),
        "p99_ms": took[min(len(took) - 1, math.ceil(len(took) * 0.99) - 1)],
        "max_ms": took[-1],
    }


async def start_jobs(client: httpx.AsyncClient, count: int) -> list[str]:
    """Jobs that stay running: each waits on a generation its followers can watch."""
    ids = []
    for n in range(count):
        body = {
            "pipeline": "rapid_divergence",
            "inputs": {"task": "杯子", "num": 1},
            "username": f"bench{n // USERS_PER_JOB_BATCH}",
        }
        reply = await client.post("/api/v1/jobs", json=body)
        if reply.status_code == 202:
            ids.append(reply.json()["data"]["id"])
    return ids


async def measure(
    process: subprocess.Popen[bytes], port: int, slow: int, sse: int, hold_s: float
) -> dict[str, Any]:
    stop = asyncio.Event()
    bodies, streams = Tally(slow), Tally(sse)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        jobs = await start_jobs(client, max(1, -(-sse // PER_JOB)))
        pinger = Pinger(port, IDLE_S + ARRIVAL_LIMIT_S + hold_s, MOST_PINGS)
        await asyncio.sleep(IDLE_S)
        arriving = time.monotonic()
        tasks = [asyncio.create_task(slow_body(port, stop, bodies)) for _ in range(slow)]
        tasks += [
            asyncio.create_task(subscriber(port, jobs[n % len(jobs)], stop, streams))
            for n in range(sse)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(bodies.settled.wait(), streams.settled.wait()), ARRIVAL_LIMIT_S
            )
        opened = time.monotonic()
        # A participant's /generate while everything is open, alongside the pings.
        generate = {"appid": 0, "type": 0, "prompts": {"task": "杯子", "num": 2}}
        generating = asyncio.create_task(
            client.post("/generate", json=generate, timeout=hold_s + 60)
        )
        await asyncio.sleep(hold_s)
        pings = pinger.pings()
        try:
            reply = await generating
            generated = f"{reply.status_code} in {time.monotonic() - opened:.1f}s"
        except httpx.HTTPError as exc:
            generated = f"failed ({type(exc).__name__}) after {time.monotonic() - opened:.1f}s"
        # SIGTERM while every slow body and stream is still open.
        sigterm_s = await asyncio.to_thread(stop_service, process)
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:  # still connecting to a server that never accepted them
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "jobs": len(jobs),
        "arrival_s": opened - arriving,
        "slow_open": bodies["open"],
        "sse_open": streams["open"],
        "sse_refused": streams["refused"],
        "idle": figures([p for p in pings if p[0] < arriving]),
        "arriving": figures([p for p in pings if arriving <= p[0] < opened]),
        "open": figures([p for p in pings if p[0] >= opened]),
        "generate": generated,
        "sigterm_s": sigterm_s,
    }


ROWS = (
    ("slow bodies open", lambda r: f"{r['slow_open']}"),
    ("event streams open / refused", lambda r: f"{r['sse_open']} / {r['sse_refused']}"),
    ("seconds until all connected", lambda r: f"{r['arrival_s']:.1f}"),
    *(
        (
            f"/ping {phase}: p50 / p99 / max ms (failed of n)",
            lambda r, phase=phase: (
                f"{r[phase]['p50_ms']:.1f} / {r[phase]['p99_ms']:.1f} / {r[phase]['max_ms']:.1f} "
                f"({r[phase]['failed']} of {r[phase]['count']})"
            ),
        )
        for phase in ("idle", "arriving", "open")
    ),
    ("participant's /generate", lambda r: r["generate"]),
    ("SIGTERM with all open -> exit s", lambda r: f"{r['sigterm_s']:.1f}"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slow", type=int, default=5000)
    parser.add_argument("--sse", type=int, default=5000)
    parser.add_argument("--hold", type=float, default=15.0, help="seconds of pings once open")
    parser.add_argument(
        "--before", default="1df134b", help="revision to compare ('' for this tree alone)"
    )
    args = parser.parse_args()
    # `timeout` or Ctrl-C: the servers and the worktree are still cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="inspilot-hostile-"))
    trees = {"now": ROOT}
    if args.before:
        trees = {f"before ({args.before})": work / "before", **trees}
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(work / "before"),
             args.before],
            check=True,
        )  # fmt: skip
    results = {}
    try:
        for name, tree in trees.items():
            # Jobs (and so their streams) and the /generate outlast the measurement.
            process, port = start_service(tree, str(work / f"data-{len(results)}"), args.hold + 30)
            try:
                results[name] = asyncio.run(measure(process, port, args.slow, args.sse, args.hold))
            finally:
                stop_service(process)
    finally:
        if args.before:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "before")],
                check=False,
            )
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{args.slow} slow bodies (1 byte / 5 s), {args.sse} event streams, a new connection "
        f"per /ping every {PING_GAP_S * 1000:.0f} ms (each at most {PING_TIMEOUT_S:.0f} s), "
        f"{args.hold:.0f} s once open; client open-file limit {hard}. Target: /ping p99 once "
        "open < 100 ms, /generate 200."
    )
    width = max(len(label) for label, _ in ROWS)
    print(f"{'':<{width}}  " + "  ".join(f"{name:<32}" for name in results))
    for label, show in ROWS:
        print(f"{label:<{width}}  " + "  ".join(f"{show(found):<32}" for found in results.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
