"""Memory under large saves and many jobs, for the code of `--before` and this tree, side by side.

Against `inspilot serve` (a subprocess, the default embedded storage, loopback only, the
model fakes in a process of their own painting real-size 1024x576 PNGs of 1.77 MB):

1. `--saves` (20) participants save at once a session of `--save-mb` (60) MB whose
   sketches are real PNG data URIs. Every save must be acknowledged and read back intact
   through `/paint/start`, or refused with a clear status (413, 503 + Retry-After, 507).
2. `--jobs` (1,000) jobs from as many usernames (`POST /api/v1/jobs`, rapid divergence,
   `--num` pictures each), all held by the service after they end (INSPILOT_MAX_JOBS
   default 1000, INSPILOT_JOB_TTL_S 3600).

The resident memory of the service (main process and app workers) and of the database
child is sampled from /proc every 0.2 s; printed: the peaks, and the figures once the
load has ended. Targets: service < 1 GB, database < 1 GB. Bounded: each phase stops at
`--phase-s` seconds. Run under the benchmark lock:
    flock /work/notes/bench.lock python benchmarks/memory_pressure.py [--before REV]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fakes_process import model_fakes  # noqa: E402 - after the path is set
from benchmarks.hostile_clients import start_service, stop_service  # noqa: E402
from benchmarks.load import tree_rss_by_role  # noqa: E402
from tests.fakes.sdapi_server import real_size_png  # noqa: E402

TARGET_MB = 1024.0
SKETCHES = 8  # distinct pictures; each session's copies differ by a text chunk
STAGES = ("快速发散", "深入发散", "收敛")
RUNNING_JOBS = 48


class Sampler:
    """Peak and latest RSS (MB) of the service (main + workers) and the database child."""

    def __init__(self, pid: int, every_s: float = 0.0) -> None:
        self._pid = pid
        self.every_s = every_s  # print the figures this often (0: never)
        self.peak = {"service": 0.0, "database": 0.0}
        self.latest = {"service": 0.0, "database": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> dict[str, float]:
        roles = tree_rss_by_role(self._pid)
        database = roles.get("database", 0.0)
        return {"service": sum(roles.values()) - database, "database": database}

    def _run(self) -> None:
        began = time.monotonic()
        shown = 0.0
        while not self._stop.wait(0.2):
            self.latest = self.sample()
            for role, value in self.latest.items():
                self.peak[role] = max(self.peak[role], value)
            if self.every_s and time.monotonic() - shown >= self.every_s:
                shown = time.monotonic()
                service, database = self.latest["service"], self.latest["database"]
                print(f"  t={shown - began:5.0f}s service {service:6.0f} MB  database "
                      f"{database:6.0f} MB", flush=True)  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def with_text(png: bytes, tag: str) -> bytes:
    """The same picture with a tEXt chunk after IHDR: a valid PNG with bytes of its own."""
    body = b"bench\x00" + tag.encode()
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)
    return png[:33] + chunk + png[33:]


def session_data(username: str, megabytes: int, sketches: list[bytes]) -> dict[str, Any]:
    """`designSchemes` of about `megabytes` MB of base64 PNG sketches, spread over stages."""
    schemes: dict[str, list[dict[str, Any]]] = {stage: [] for stage in STAGES}
    size, n = 0, 0
    while size < megabytes * 1_000_000:
        png = with_text(sketches[n % len(sketches)], f"{username}/{n}")
        uri = "data:image/png;base64," + base64.b64encode(png).decode()
        scheme = {
            "name": f"方案{n}",
            "canvasImage": uri,
            "paths": [[{"x": i, "y": i / 2} for i in range(40)]],
            "texts": [{"text": f"便携{n}", "position": {"x": 1, "y": 2}}],
        }
        schemes[STAGES[n % len(STAGES)]].append(scheme)
        size += len(uri)
        n += 1
    return {
        "designSchemes": {**schemes, "准备": None, "完成": None, "禁止": None},
        "designTask": "设计一款雨伞",
        "currentStage": "深入发散",
    }


_FIELDS = {"快速发散": "rapidDivergenceSchemes", "深入发散": "deepDivergenceSchemes"}


def intact(sent: dict[str, Any], session: dict[str, Any]) -> bool:
    """The session read back holds every scheme exactly as it was saved."""
    fields = {**_FIELDS, "收敛": "convergenceSchemes"}
    return all(session.get(fields[stage]) == sent["designSchemes"][stage] for stage in STAGES)


async def one_save(
    client: httpx.AsyncClient, username: str, body: bytes, sent: dict[str, Any]
) -> str:
    start = await client.post("/paint/start", json={"username": username})
    if start.status_code != 200:
        return f"start {start.status_code}"
    reply = await client.post(
        "/paint/save", content=body, headers={"Content-Type": "application/json"}
    )
    if reply.status_code != 200:
        retry = reply.headers.get("retry-after")
        return f"refused {reply.status_code}" + (" with Retry-After" if retry else "")
    back = await client.post("/paint/start", json={"username": username})
    if back.status_code != 200:
        return f"read back {back.status_code}"
    return "acknowledged, intact" if intact(sent, back.json()["data"]) else "acknowledged, CHANGED"


async def large_saves(url: str, count: int, megabytes: int, limit_s: float) -> dict[str, int]:
    sketches = [real_size_png(1024, 576, f"sketch/{i}") for i in range(SKETCHES)]
    payloads = []
    for n in range(count):
        data = session_data(f"saver{n}", megabytes, sketches)
        body = {"username": f"saver{n}", "data": data}
        payloads.append((f"saver{n}", httpx.Request("POST", "/", json=body).read(), data))
    del sketches
    outcomes: dict[str, int] = {}
    timeout = httpx.Timeout(limit_s)
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        tasks = [asyncio.create_task(one_save(client, *payload)) for payload in payloads]
        del payloads
        done, late = await asyncio.wait(tasks, timeout=limit_s) if tasks else (set(), set())
        for task in late:
            task.cancel()
    for task in done:
        error = task.exception()
        key = task.result() if error is None else f"error {type(error).__name__}"
        outcomes[key] = outcomes.get(key, 0) + 1
    if late:
        outcomes[f"not done in {limit_s:.0f}s"] = len(late)
    return outcomes


async def many_jobs(url: str, count: int, num: int, limit_s: float) -> dict[str, int]:
    """`count` jobs from as many usernames, at most RUNNING_JOBS running at once (as many
    participants as a study has at a time); every one is held by the service at the end."""
    outcomes: dict[str, int] = {}
    ids: list[str] = []
    running = asyncio.Semaphore(RUNNING_JOBS)

    def count_as(key: str) -> None:
        outcomes[key] = outcomes.get(key, 0) + 1

    async def one(client: httpx.AsyncClient, n: int) -> None:
        async with running:
            body = {
                "pipeline": "rapid_divergence",
                "inputs": {"task": f"厨房{n}", "num": num},
                "username": f"user{n:04d}",
            }
            reply = await client.post("/api/v1/jobs", json=body)
            if reply.status_code != 202:
                count_as(f"refused {reply.status_code}")
                return
            job_id = reply.json()["data"]["id"]
            ids.append(job_id)
            while True:
                await asyncio.sleep(0.5)
                job = (await client.get(f"/api/v1/jobs/{job_id}")).json()["data"]
                if job["status"] not in ("queued", "running"):
                    break
            error = job.get("error") or {}
            count_as(job["status"] + (f": {error['message'][:60]}" if error else ""))

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        tasks = [asyncio.create_task(one(client, n)) for n in range(count)]
        _, late = await asyncio.wait(tasks, timeout=limit_s) if tasks else (set(), set())
        for task in late:
            task.cancel()
        if late:
            outcomes[f"not done in {limit_s:.0f}s"] = len(late)
        # The first job, held the longest: its picture still answers.
        if ids:
            job = (await client.get(f"/api/v1/jobs/{ids[0]}")).json()["data"]
            first = job["result"]["result"][0]["items"][0]["image"] if job["result"] else None
            picture = await client.get(first) if first else None
            ok = picture is not None and picture.status_code == 200
            outcomes["first job's picture read"] = int(ok)
    return outcomes


def measure(tree: Path, args: argparse.Namespace, models: tuple[str, list[str]]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    openai, sd = models
    # The service started by hostile_clients' helper takes its model settings from here.
    os.environ.update(
        {
            "INSPILOT_TEXT_BACKEND": "openai",
            "INSPILOT_OPENAI_BASE_URL": openai,
            "INSPILOT_OPENAI_API_KEY": "k",
            "INSPILOT_OPENAI_MODEL": "bench",
            "INSPILOT_IMAGES_BACKEND": "sd",
            "INSPILOT_SD_INSTANCES": ",".join(sd),
        }
    )
    with tempfile.TemporaryDirectory(prefix="inspilot-mem-") as data_dir:
        service, port = start_service(tree, data_dir, image_s=0.0)
        sampler = Sampler(service.pid, args.timeline_s)
        try:
            url = f"http://127.0.0.1:{port}"
            phases = {
                "saves": lambda: large_saves(url, args.saves, args.save_mb, args.phase_s),
                "jobs": lambda: many_jobs(url, args.jobs, args.num, args.phase_s),
            }
            for phase, load in phases.items():
                sampler.peak = {"service": 0.0, "database": 0.0}
                began = time.monotonic()
                figures[phase] = asyncio.run(load())
                figures[f"{phase}_s"] = time.monotonic() - began
                time.sleep(3)
                figures[f"{phase}_peak"] = dict(sampler.peak)
                figures[f"{phase}_after"] = sampler.sample()
        finally:
            sampler.stop()
            stop_service(service)
    return figures


def report(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    print(f"\n{'':42}" + "".join(f"{name:>16}" for name in names))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:42}" + "".join(f"{value:>16}" for value in values))

    for phase, title in (("saves", "concurrent large saves"), ("jobs", "jobs held")):
        print(f"-- {title}")
        for role in ("service", "database"):
            peaks = [results[name][f"{phase}_peak"][role] for name in names]
            row(f"{role} peak RSS MB (target < {TARGET_MB:.0f})", [f"{v:.0f}" for v in peaks])
            after = [results[name][f"{phase}_after"][role] for name in names]
            row(f"{role} RSS MB 3 s after", [f"{v:.0f}" for v in after])
        row("phase seconds", [f"{results[name][f'{phase}_s']:.1f}" for name in names])
        keys = sorted({key for name in names for key in results[name][phase]})
        for key in keys:
            row(f"  {key}", [str(results[name][phase].get(key, 0)) for name in names])
    if len(names) == 2:
        for phase in ("saves", "jobs"):
            for role in ("service", "database"):
                old, new = (results[name][f"{phase}_peak"][role] for name in names)
                print(f"{phase}: {role} peak {names[0]} / {names[1]}: x{old / max(new, 1):.2f}")
    now = results[names[-1]]
    met = all(
        now[f"{phase}_peak"][role] < TARGET_MB
        for phase in ("saves", "jobs")
        for role in ("service", "database")
    )
    print(f"targets (service and database < {TARGET_MB:.0f} MB) met by {names[-1]}: {met}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="", help="revision to compare (e.g. main before)")
    parser.add_argument("--saves", type=int, default=20)
    parser.add_argument("--save-mb", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--num", type=int, default=1, help="pictures per job")
    parser.add_argument("--phase-s", type=float, default=180.0, help="bound of each phase")
    parser.add_argument("--timeline-s", type=float, default=0.0, help="print RSS this often")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    work = Path(tempfile.mkdtemp(prefix="inspilot-mem-trees-"))
    trees = [("now", ROOT)]
    worktree = ["git", "-C", str(ROOT), "worktree"]
    try:
        if args.before:
            before = work / "before"
            subprocess.run(
                [*worktree, "add", "-q", "--detach", str(before), args.before], check=True
            )
            trees.insert(0, ("before", before))
        with model_fakes(6, text_s=0.0, image_s=0.0) as models:
            for name, tree in trees:
                print(f"measuring {name} ({tree}) ...", flush=True)
                results[name] = measure(tree, args, models)
    finally:
        if args.before:
            subprocess.run([*worktree, "remove", "--force", str(work / "before")], check=False)
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
