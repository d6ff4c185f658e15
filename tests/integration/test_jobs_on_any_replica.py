"""Jobs on any replica: three apps on one MongoDB with INSPILOT_JOBS_BACKEND=mongodb. A job
started on A is read and followed on B and cancelled on C; the per-user allowance counts
every replica; a replica that stops beating has its running jobs failed and recorded."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fakes.uvicorn_thread import served

# Slow: uvicorn-served replicas on the embedded MongoDB-wire server.
pytestmark = pytest.mark.slow

JOBS = "/api/v1/jobs"
TOKEN = "research-token"
BODY = {"pipeline": "rapid_divergence", "inputs": {"task": "厨房", "num": 2}, "username": "u1"}

Replicas = Callable[..., list[tuple[Any, str]]]


@pytest.fixture
def replicas(mongodb_uri: str, mongo_database: str) -> Iterator[Replicas]:
    with ExitStack() as stack:

        def start(count: int, **extra: str) -> list[tuple[Any, str]]:
            started = []
            for _ in range(count):
                settings = Settings.load(
                    {
                        "INSPILOT_STORAGE_BACKEND": "mongodb",
                        "INSPILOT_MONGODB_URI": mongodb_uri,
                        "INSPILOT_MONGODB_DATABASE": mongo_database,
                        "INSPILOT_JOBS_BACKEND": "mongodb",
                        "INSPILOT_RESEARCH_TOKEN": TOKEN,
                        "INSPILOT_DEMO_TEXT_LATENCY_S": "3",
                        **extra,
                    }
                )
                app = create_app(build_container(settings))
                started.append((app, stack.enter_context(served(app))))
            return started

        yield start


def _data(reply: httpx.Response, status: int = 200) -> Any:
    assert reply.status_code == status, reply.text
    return reply.json()["data"]


def _follow(url: str, into: list[tuple[str, Any]]) -> threading.Thread:
    def read() -> None:
        with httpx.stream("GET", url, timeout=30) as reply:
            for block in reply.iter_text():
                for part in block.replace("\r\n", "\n").split("\n\n"):
                    fields = dict(line.split(": ", 1) for line in part.splitlines() if ": " in line)
                    if "event" in fields:
                        into.append((fields["event"], json.loads(fields.get("data") or "{}")))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _wait(check: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _record(url: str, generation_id: str) -> Any:
    reply = httpx.get(
        f"{url}/api/v1/generations/{generation_id}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    return reply.json()["data"] if reply.status_code == 200 else None


def test_a_job_started_on_a_is_followed_on_b_and_cancelled_on_c(replicas: Replicas) -> None:
    (_, a), (_, b), (_, c) = replicas(3)
    job = _data(httpx.post(f"{a}{JOBS}", json=BODY), 202)
    seen = _data(httpx.get(f"{b}{JOBS}/{job['id']}"))
    assert seen["status"] in {"queued", "running"} and seen["generationId"] == job["generationId"]
    events: list[tuple[str, Any]] = []
    follower = _follow(f"{b}{JOBS}/{job['id']}/events", events)
    time.sleep(0.5)
    asked = time.monotonic()
    cancelled = _data(httpx.delete(f"{c}{JOBS}/{job['id']}", timeout=15))
    took = time.monotonic() - asked
    assert cancelled["status"] == "cancelled"
    assert took < 1.0, f"the cancel took {took:.2f}s to reach the run"
    follower.join(timeout=10)
    assert events and events[-1][0] == "cancelled"
    assert events[-1][1]["generationId"] == job["generationId"]
    _wait(lambda: _record(b, job["generationId"]) is not None, 10, "the run was not recorded")
    assert _record(b, job["generationId"])["outcome"] == "cancelled"


def test_a_finished_job_reads_the_same_on_every_replica(replicas: Replicas) -> None:
    (_, a), (_, b) = replicas(2, INSPILOT_DEMO_TEXT_LATENCY_S="0")
    job = _data(httpx.post(f"{a}{JOBS}", json=BODY), 202)
    _wait(lambda: _data(httpx.get(f"{b}{JOBS}/{job['id']}"))["status"] == "done", 20, "done")
    here, there = (_data(httpx.get(f"{url}{JOBS}/{job['id']}")) for url in (a, b))
    assert here["result"] == there["result"] and there["result"]
    picture = there["result"]["result"][0]["items"][0]["image"]
    _wait(lambda: httpx.get(f"{b}{picture}").status_code == 200, 10, "picture on B")
    assert httpx.get(f"{b}{picture}").content == httpx.get(f"{a}{picture}").content
    events: list[tuple[str, Any]] = []
    _follow(f"{b}{JOBS}/{job['id']}/events", events).join(timeout=10)
    assert [name for name, _ in events][-1] == "done"
    assert [name for name, _ in events] == [
        name for name, _ in _events_of(f"{a}{JOBS}/{job['id']}/events")
    ]


def _events_of(url: str) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    _follow(url, events).join(timeout=10)
    return events


def test_the_per_user_allowance_counts_every_replica(replicas: Replicas) -> None:
    (_, a), (_, b) = replicas(2, INSPILOT_JOBS_PER_USER="1")
    first = _data(httpx.post(f"{a}{JOBS}", json=BODY), 202)
    refused = httpx.post(f"{b}{JOBS}", json=BODY)
    assert refused.status_code == 429, refused.text
    assert "at most 1 running jobs per user" in refused.json()["message"]
    other = httpx.post(f"{b}{JOBS}", json={**BODY, "username": "u2"})
    assert other.status_code == 202
    httpx.delete(f"{a}{JOBS}/{first['id']}", timeout=15)
    assert httpx.post(f"{b}{JOBS}", json=BODY).status_code == 202


def test_a_dead_replicas_running_jobs_are_failed_and_recorded(replicas: Replicas) -> None:
    lease_s = 1.5
    (app_a, a), (_, b) = replicas(
        2, INSPILOT_SD_LEASE_S=str(lease_s), INSPILOT_DEMO_TEXT_LATENCY_S="30"
    )
    job = _data(httpx.post(f"{a}{JOBS}", json=BODY), 202)
    # A stops beating, as after kill -9 (its run goes on, unseen).
    jobs_a = app_a.state.container.jobs()
    jobs_a._watcher.cancel()
    stopped = time.monotonic()
    _wait(
        lambda: _data(httpx.get(f"{b}{JOBS}/{job['id']}"))["status"] == "failed",
        lease_s + 3,
        "B did not fail the dead replica's job",
    )
    assert time.monotonic() - stopped < lease_s + 2.5
    failed = _data(httpx.get(f"{b}{JOBS}/{job['id']}"))
    assert failed["error"]["message"] == "the replica running it stopped"
    events = _events_of(f"{b}{JOBS}/{job['id']}/events")
    assert events[-1][0] == "failed" and events[-1][1]["message"] == failed["error"]["message"]
    _wait(lambda: _record(b, job["generationId"]) is not None, 10, "not recorded")
    record = _record(b, job["generationId"])
    assert record["outcome"] == "failed" and "replica" in record["error"]


def test_a_finished_jobs_pictures_read_on_another_replica_before_its_record(
    replicas: Replicas,
) -> None:
    """The pictures go to the blob store before the job says done: B reads them at once,
    though A's record queue is slow (once, B answered 404 until the record was written)."""
    (app_a, a), (_, b) = replicas(2, INSPILOT_DEMO_TEXT_LATENCY_S="0")
    store_a = app_a.state.container.store()
    write_record = store_a.add_generation

    async def slow_record(record: Any) -> None:
        await asyncio.sleep(4)
        await write_record(record)

    store_a.add_generation = slow_record
    job = _data(httpx.post(f"{a}{JOBS}", json=BODY), 202)
    _wait(lambda: _data(httpx.get(f"{b}{JOBS}/{job['id']}"))["status"] == "done", 20, "done")
    there = _data(httpx.get(f"{b}{JOBS}/{job['id']}"))
    items = [item for creative in there["result"]["result"] for item in creative["items"]]
    pictures = [item["image"] for item in items if item["image"]]
    assert pictures
    read = [httpx.get(f"{b}{picture}") for picture in pictures]
    assert _record(b, job["generationId"]) is None, "the record was not slow enough to tell"
    assert [reply.status_code for reply in read] == [200] * len(pictures)
    assert all(reply.content.startswith(b"\x89PNG") for reply in read)
    _wait(lambda: _record(b, job["generationId"]) is not None, 15, "not recorded")
    for picture, reply in zip(pictures, read, strict=True):
        step = picture.rsplit("/", 1)[1]
        stored = httpx.get(
            f"{b}/api/v1/generations/{job['generationId']}/images/{step}",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert stored.status_code == 200 and stored.content == reply.content
