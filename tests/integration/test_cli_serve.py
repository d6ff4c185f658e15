"""`inspilot serve` as operators run it: granian, the embedded database, SIGTERM, restart."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from adapters.embedded_mongo import running_server_uri
from entrypoints.export.archive import folder_name

# Slow: each test starts `inspilot serve` (granian, the embedded database) as a subprocess.
pytestmark = pytest.mark.slow

pytest.importorskip("secantus")
TOKEN = "research-token"
SCHEME = {"name": "方案1", "paths": [[1, 2]], "texts": [{"text": "折叠", "position": {"x": 1}}]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(
    data_dir: Path, *args: str, **extra: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    env = {
        **os.environ,
        "INSPILOT_DATA_DIR": str(data_dir),
        "INSPILOT_RESEARCH_TOKEN": TOKEN,
        "INSPILOT_LOG_LEVEL": "warning",
        **extra,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port), *args],
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "inspilot serve exited"
            assert time.monotonic() < deadline, "inspilot serve did not answer"
            try:
                if httpx.get(f"{url}/ping", timeout=1).text == "pong":
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, process
    finally:
        # The whole group: granian's worker and the database process are children.
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _generations(url: str) -> list[dict[str, object]]:
    reply = httpx.get(
        f"{url}/api/v1/generations",
        params={"username": "p1"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    return list(reply.json()["data"])


def test_serve_keeps_every_save_and_record_across_sigterm_and_restart(tmp_path: Path) -> None:
    body = {"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 2}, "username": "p1"}
    with serving(tmp_path) as (url, process):
        assert httpx.post(f"{url}/paint/start", json={"username": "p1"}).json()["success"]
        save = {"username": "p1", "data": {"designSchemes": {"快速发散": [SCHEME]}}}
        assert httpx.post(f"{url}/paint/save", json=save).json()["success"]
        reply = httpx.post(f"{url}/generate", json=body, timeout=60).json()
        image = base64.b64decode(reply["data"]["result"][0]["items"][0]["image"])
        assert image.startswith(b"\x89PNG")
        # Other commands reach the data through the service's own database process.
        uri = running_server_uri(str(tmp_path))
        assert uri is not None
        with MongoClient(uri, serverSelectionTimeoutMS=3000) as client:
            assert client["inspilot"]["sessions"].count_documents({"username": "p1"}) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    assert running_server_uri(str(tmp_path)) is None
    with serving(tmp_path) as (url, _):
        session = httpx.post(f"{url}/paint/start", json={"username": "p1"}).json()["data"]
        assert session["rapidDivergenceSchemes"] == [SCHEME]
        (record,) = _generations(url)
        assert record["outcome"] == "succeeded" and len(record["imageSteps"]) == 2


def test_a_client_that_leaves_is_recorded_as_abandoned_under_granian(tmp_path: Path) -> None:
    body = {"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 2}, "username": "p1"}
    with serving(tmp_path, INSPILOT_DEMO_TEXT_LATENCY_S="2") as (url, _):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/generate", json=body, timeout=0.5)
        deadline = time.monotonic() + 10
        while not (records := _generations(url)):
            assert time.monotonic() < deadline, "the abandoned run was not recorded"
            time.sleep(0.1)
        (record,) = records
        assert record["outcome"] == "abandoned" and "abandoned" in str(record["error"])
        assert record["source"] == "legacy" and record["requestId"]


def test_a_killed_server_main_process_leaves_nothing_running(tmp_path: Path) -> None:
    with serving(tmp_path) as (_url, process):
        group = process.pid
        process.kill()  # granian's main only: its worker must notice and stop itself
        process.wait()
        deadline = time.monotonic() + 20
        while _alive_in_group(group):
            assert time.monotonic() < deadline, "the worker or the database outlived the server"
            time.sleep(0.2)
    assert running_server_uri(str(tmp_path)) is None


def _alive_in_group(group: int) -> bool:
    for status in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == group and fields[0] != "Z":  # pgrp, not a zombie
                return True
    return False


def test_export_reads_beside_a_running_service_on_the_embedded_database(tmp_path: Path) -> None:
    with serving(tmp_path / "data") as (url, _):
        assert httpx.post(f"{url}/paint/start", json={"username": "p9"}).json()["success"]
        env = {k: v for k, v in os.environ.items() if k != "INSPILOT_RESEARCH_TOKEN"}
        env["INSPILOT_DATA_DIR"] = str(tmp_path / "data")
        out = tmp_path / "study.zip"
        done = subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", "export", "--out", str(out)],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
        said = done.stderr.decode()
        assert f"embedded database in {tmp_path / 'data'} (through the running service" in said
        assert f"wrote {out}: 1 participants, 0 generations, 0 pictures" in said
    with zipfile.ZipFile(out) as archive:
        assert f"participants/{folder_name('p9')}/session.json" in archive.namelist()


def test_generate_runs_beside_a_running_service_and_records_through_it(tmp_path: Path) -> None:
    with serving(tmp_path / "data") as (url, _):
        env = {**os.environ, "INSPILOT_DATA_DIR": str(tmp_path / "data")}
        command = ["generate", "rapid_divergence", "--task", "厨房", "--num", "1", "--username"]
        done = subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", *command, "p1", "--out", str(tmp_path / "o")],
            env=env,
            capture_output=True,
            timeout=120,
        )
        said = done.stderr.decode()
        assert done.returncode == 0, said
        assert "(through the running service's database process)" in said
        deadline = time.monotonic() + 10
        while not (records := _generations(url)):
            assert time.monotonic() < deadline, "the command's record never reached the service"
            time.sleep(0.1)
        (record,) = records
        assert record["source"] == "cli" and str(record["requestId"]).startswith("cli-")
        assert f"record {record['id']}" in said
