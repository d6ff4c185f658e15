"""Slow-body clients and event-stream subscribers against `inspilot serve`, side by side.

Opens `--slow` clients that send a /paint/save body one byte every 5 s and `--sse`
subscribers spread over running jobs (at most INSPILOT_SSE_PER_JOB per job), then
measures GET /ping latency (p50, p99 over `--pings` sequential pings) and the time of
one participant's /generate, for the code of `--before` (default: main before issue
14) and this tree, on the default embedded storage, loopback only. Bounded: about
`--hold` seconds of load per server. Target: /ping p99 under 100 ms, /generate done.
Run: python benchmarks/hostile_clients.py [--slow 5000] [--sse 5000] [--before REV]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


def stop_service(process: subprocess.Popen[bytes]) -> float:
    began = time.monotonic()
    process.terminate()
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pass
    took = time.monotonic() - began
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return took


async def slow_body(port: int, stop: asyncio.Event, opened: list[int]) -> None:
    """One byte every 5 s, until told to stop or the server cuts it."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    try:
        writer.write(SAVE_HEAD)
        opened[0] += 1
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)
            writer.write(b" ")
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def subscriber(port: int, job_id: str, stop: asyncio.Event, counts: dict[str, int]) -> None:
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


async def measure(port: int, slow: int, sse: int, pings: int, hold_s: float) -> dict[str, Any]:
    stop = asyncio.Event()
    opened = [0]
    counts = {"open": 0, "refused": 0}
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        jobs = await start_jobs(client, max(1, -(-sse // PER_JOB)))
        tasks = [asyncio.create_task(slow_body(port, stop, opened)) for _ in range(slow)]
        tasks += [
            asyncio.create_task(subscriber(port, jobs[n % len(jobs)], stop, counts))
            for n in range(sse)
        ]
        await asyncio.sleep(min(hold_s, 10))  # let them connect
        latencies = []
        failures = 0
        for _ in range(pings):
            began = time.perf_counter()
            try:
                reply = await client.get("/ping", timeout=30)
                ok = reply.text == "pong"
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - began)
            failures += not ok
            await asyncio.sleep(max(0.0, hold_s / 2 / pings))
        began = time.perf_counter()
        generate = {"appid": 0, "type": 0, "prompts": {"task": "杯子", "num": 2}}
        try:
            reply = await client.post("/generate", json=generate, timeout=120)
            generated = f"{reply.status_code} in {time.perf_counter() - began:.1f}s"
        except httpx.HTTPError as exc:
            generated = f"failed ({type(exc).__name__}) after {time.perf_counter() - began:.1f}s"
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    return {
        "jobs": len(jobs),
        "slow_open": opened[0],
        "sse_open": counts["open"],
        "sse_refused": counts["refused"],
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "ping_failures": failures,
        "generate": generated,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slow", type=int, default=5000)
    parser.add_argument("--sse", type=int, default=5000)
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds of load per server")
    parser.add_argument("--before", default="41adb52", help="revision to compare (main before)")
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="inspilot-hostile-"))
    before = work / "before"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(before), args.before],
        check=True,
    )
    results = {}
    try:
        for name, tree in (("before", before), ("now", ROOT)):
            process, port = start_service(tree, str(work / f"data-{name}"), args.hold + 20)
            try:
                results[name] = asyncio.run(
                    measure(port, args.slow, args.sse, args.pings, args.hold)
                )
            finally:
                results[name]["sigterm_s"] = stop_service(process)
            print(name, results[name], flush=True)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False
        )
        shutil.rmtree(work, ignore_errors=True)
    print(f"client open-file limit {hard}; {args.slow} slow bodies, {args.sse} subscribers")
    for name, found in results.items():
        print(
            f"{name:<7} /ping p50 {found['p50_ms']:7.1f} ms  p99 {found['p99_ms']:8.1f} ms "
            f"(target < 100)  ping failures {found['ping_failures']}  "
            f"slow open {found['slow_open']}  streams open {found['sse_open']} "
            f"refused {found['sse_refused']}  /generate {found['generate']}  "
            f"SIGTERM -> exit {found['sigterm_s']:.1f}s"
        )
    ratio = results["before"]["p99_ms"] / max(results["now"]["p99_ms"], 0.001)
    print(f"/ping p99 before / now: x{ratio:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
