"""`inspilot serve --workers N`: one database process for all workers, one SD ledger, and a
worker killed outright is replaced with nothing a participant saved lost."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from adapters.embedded_mongo import running_server_uri
from tests.fakes.sdapi_server import fake_sd_instances
from tests.integration.test_cli_serve import SCHEME, TOKEN, serving

# Slow: `inspilot serve --workers` as a subprocess.
pytestmark = pytest.mark.slow

pytest.importorskip("secantus")


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live child processes of `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append((int(stat.parent.name), command))
    return found


def _workers(main: int) -> list[int]:
    return [pid for pid, command in _children(main) if "entrypoints.cli serve" in command]


def _databases(main: int) -> list[int]:
    return [pid for pid, command in _children(main) if "embedded_mongo_child" in command]


def _wait_for(condition: object, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ping", timeout=1).text == "pong"
    except httpx.HTTPError:
        return False


def _save(url: str, username: str) -> None:
    assert httpx.post(f"{url}/paint/start", json={"username": username}).json()["success"]
    save = {"username": username, "data": {"designSchemes": {"快速发散": [SCHEME]}}}
    assert httpx.post(f"{url}/paint/save", json=save).json()["success"]


def _saved(url: str, username: str) -> list[object]:
    reply = httpx.post(f"{url}/paint/start", json={"username": username}, timeout=10)
    return list(reply.json()["data"]["rapidDivergenceSchemes"])


def test_two_workers_share_one_database_and_one_sd_ledger(tmp_path: Path) -> None:
    body = {"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 4}, "username": "w1"}
    with (
        fake_sd_instances(2, latency_s=0.2) as sd,
        serving(
            tmp_path,
            "--workers",
            "2",
            INSPILOT_IMAGES_BACKEND="sd",
            INSPILOT_SD_INSTANCES=",".join(server.url for server in sd),
        ) as (url, process),
    ):
        _wait_for(lambda: len(_workers(process.pid)) == 2, 30, "two workers")
        assert len(_databases(process.pid)) == 1
        replies = [httpx.post(f"{url}/generate", json=body, timeout=60).json() for _ in range(2)]
        assert all(reply["success"] for reply in replies)
        assert [server.counters.max_in_flight for server in sd] == [1, 1]
        uri = running_server_uri(str(tmp_path))
        assert uri is not None
        with MongoClient(uri, serverSelectionTimeoutMS=3000) as client:
            ledger = list(client["inspilot"]["sd_instances"].find())
            replicas = client["inspilot"]["sd_replicas"].count_documents({})
        assert {doc["_id"] for doc in ledger} == {server.url for server in sd}
        assert replicas == 2  # each worker takes its slots through the ledger
        # A dashboard login is kept in the database, so whichever worker a new
        # connection reaches honours it.
        login = httpx.post(f"{url}/dashboard/login", data={"token": TOKEN})
        session = {"inspilot_research": login.cookies["inspilot_research"]}
        replies = [httpx.get(f"{url}/api/v1/generations", cookies=session) for _ in range(12)]
        assert {reply.status_code for reply in replies} == {200}
        with MongoClient(uri, serverSelectionTimeoutMS=3000) as client:
            assert client["inspilot"]["dashboard_sessions"].count_documents({}) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_killed_worker_is_replaced_and_nothing_saved_is_lost(
    tmp_path: Path, workers: str
) -> None:
    with serving(tmp_path, "--workers", workers) as (url, process):
        _wait_for(lambda: len(_workers(process.pid)) == int(workers), 30, "workers")
        [database] = _databases(process.pid)
        _save(url, "k1")
        for victim in _workers(process.pid):
            os.kill(victim, signal.SIGKILL)
            _wait_for(lambda v=victim: v not in _workers(process.pid), 10, "worker dead")
            _wait_for(lambda: _answers(url), 10, "the service did not answer again in 10 s")
        _wait_for(lambda: len(_workers(process.pid)) == int(workers), 10, "workers replaced")
        assert _databases(process.pid) == [database]  # the database never restarted
        assert _saved(url, "k1") == [SCHEME]
        assert process.poll() is None


def test_workers_refuse_memory_storage(tmp_path: Path) -> None:
    env = {**os.environ, "INSPILOT_STORAGE_BACKEND": "memory", "INSPILOT_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--workers", "2", "--port", "1"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"INSPILOT_STORAGE_BACKEND=memory" in done.stderr


def test_workers_must_be_a_count_or_auto() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--workers", "0"],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"--workers: must be a whole number of at least 1, or auto" in done.stderr
