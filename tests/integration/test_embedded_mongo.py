"""The embedded server in its own process: usable URI, clear errors, logs, restarts, discovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pymongo import MongoClient

from adapters.embedded_mongo import (
    EmbeddedMongoExperimentRepository,
    EmbeddedMongoProcess,
    running_server_uri,
)
from domain.errors import StorageError
from domain.experiment import Experiment, Stage

# Slow: each test starts, kills or restarts the embedded MongoDB-wire server (a child process).
pytestmark = pytest.mark.slow

pytest.importorskip("secantus")


def test_start_returns_a_uri_drivers_can_use_served_by_a_child_process(tmp_path: Path) -> None:
    server = EmbeddedMongoProcess(str(tmp_path / "new" / "dir"))
    with server as uri:
        assert uri.startswith("mongodb://127.0.0.1:") and "directConnection=true" in uri
        assert server.pid is not None and server.pid != os.getpid()
        with MongoClient(uri, serverSelectionTimeoutMS=2000) as client:
            assert client.admin.command("ping")["ok"] == 1
    assert server.exited() is None  # stopped and forgotten, not dead and watched


def test_a_data_dir_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with EmbeddedMongoProcess(str(tmp_path)):
        with pytest.raises(StorageError, match="in use"):
            EmbeddedMongoProcess(str(tmp_path)).start()


def test_without_secantus_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "secantus", None)  # makes `import secantus` fail
    with pytest.raises(StorageError, match=r"pip install -e '\.\[embedded\]'"):
        EmbeddedMongoProcess(str(tmp_path)).start()


def test_other_commands_find_the_running_server(tmp_path: Path) -> None:
    assert running_server_uri(str(tmp_path)) is None
    with EmbeddedMongoProcess(str(tmp_path)) as uri:
        assert running_server_uri(str(tmp_path)) == uri
    assert running_server_uri(str(tmp_path)) is None


async def test_the_child_logs_reach_the_service_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inspilot.storage.embedded")
    repository = EmbeddedMongoExperimentRepository(str(tmp_path))
    await repository.start()
    await repository.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "inspilot.storage.embedded"]
    assert any("SecantusDB" in line for line in lines), lines


async def test_a_second_service_on_the_same_data_is_refused_by_name(tmp_path: Path) -> None:
    first = EmbeddedMongoExperimentRepository(str(tmp_path))
    await first.start()
    try:
        with pytest.raises(StorageError, match="another running InsPilot"):
            await EmbeddedMongoExperimentRepository(str(tmp_path)).start()
    finally:
        await first.close()


async def _once_reachable(
    repository: EmbeddedMongoExperimentRepository, username: str
) -> Experiment | None:
    """The driver finds the restarted server at its next heartbeat: storage errors until then."""
    for _ in range(50):
        try:
            return await repository.get(username)
        except StorageError:
            await asyncio.sleep(0.2)
    return await repository.get(username)


async def test_a_killed_server_comes_back_with_every_acknowledged_save(tmp_path: Path) -> None:
    repository = EmbeddedMongoExperimentRepository(
        str(tmp_path), timeout_ms=300, restart_backoff_s=(0.2, 1.0)
    )
    await repository.start()
    try:
        started = await repository.get_or_create(Experiment(username="kit"))
        saved = started.with_saved_state(
            current_stage=Stage.RAPID_DIVERGENCE,
            design_task="acknowledged",
            schemes={Stage.RAPID_DIVERGENCE: ({"name": "a", "paths": [1, 2]},)},
            at=datetime.now(UTC),
        )
        await repository.save(saved)
        await asyncio.to_thread(repository.server.kill)
        with pytest.raises(StorageError):
            await repository.get("kit")
        for _ in range(100):
            if repository.restarts:
                break
            await asyncio.sleep(0.1)
        assert repository.restarts == 1
        loaded = await _once_reachable(repository, "kit")
        assert loaded is not None and loaded.design_task == "acknowledged"
        assert loaded.schemes_of(Stage.RAPID_DIVERGENCE) == saved.schemes_of(Stage.RAPID_DIVERGENCE)
    finally:
        await repository.close()


async def test_a_server_that_lives_but_stops_answering_is_restarted(tmp_path: Path) -> None:
    """A frozen process (as after a WiredTiger panic: alive, useless) is killed and
    started again once its write-and-read check has failed for `unanswered_s`."""
    repository = EmbeddedMongoExperimentRepository(
        str(tmp_path),
        timeout_ms=300,
        restart_backoff_s=(0.2, 1.0),
        unanswered_s=1.0,
        watch_interval_s=0.2,
    )
    await repository.start()
    try:
        await repository.get_or_create(Experiment(username="frozen", design_task="kept"))
        frozen_pid = repository.server.pid
        assert frozen_pid is not None
        os.kill(frozen_pid, signal.SIGSTOP)
        for _ in range(150):
            if repository.restarts:
                break
            await asyncio.sleep(0.1)
        assert repository.restarts == 1
        assert repository.server.pid != frozen_pid
        loaded = await _once_reachable(repository, "frozen")
        assert loaded is not None and loaded.design_task == "kept"
        await repository.round_trip()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(frozen_pid, signal.SIGKILL)
        await repository.close()


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_the_child_returns_large_buffers_to_the_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """glibc's defaults let the child's per-thread arenas keep 1 GB after large saves
    (benchmarks/memory_pressure.py); an operator's own setting still wins."""
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    server = EmbeddedMongoProcess(str(tmp_path))
    with server:
        assert server.pid is not None
        found = _environment(server.pid)
    assert found["MALLOC_MMAP_THRESHOLD_"] == str(128 * 1024)
    assert found["MALLOC_TRIM_THRESHOLD_"] == str(128 * 1024)
    assert found["MALLOC_ARENA_MAX"] == "4"
