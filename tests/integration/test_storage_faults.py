"""Storage faults heal themselves: a disk below its floor refuses writes (507, code 3) and
works again once space is freed; readiness writes and reads, so a store that cannot
write is not ready."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from adapters.embedded_mongo import EmbeddedMongoProcess
from adapters.memory_repository import InMemoryExperimentRepository
from domain.errors import StorageError
from domain.experiment import Experiment
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.observability.logs import RequestIdFilter
from entrypoints.settings import Settings

pytest.importorskip("secantus")

DISK_MB = 160
FLOOR_MB = 60


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_MB made by the test (skipped where the machine cannot mount one)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip() or made.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave_mb: int) -> Path:
    """A file taking all but about `leave_mb` of the disk."""
    import shutil

    filler = disk / "filler"
    free_mb = shutil.disk_usage(disk).free // (1024 * 1024)
    with filler.open("wb") as out:
        chunk = b"\0" * (1024 * 1024)
        for _ in range(max(0, free_mb - leave_mb)):
            out.write(chunk)
    return filler


def _save(client: TestClient[Any], task: str) -> Any:
    data = {"designSchemes": {}, "designTask": task, "currentStage": "快速发散"}
    return client.post("/paint/save", json={"username": "p1", "data": data})


@pytest.mark.slow  # fills a 160 MB tmpfs
def test_below_the_floor_saves_and_generations_are_refused_and_heal_when_space_is_freed(
    small_disk: Path,
) -> None:
    settings = Settings.load(
        {"INSPILOT_DATA_DIR": str(small_disk / "data"), "INSPILOT_MIN_FREE_MB": str(FLOOR_MB)}
    )
    with TestClient(create_app(build_container(settings))) as client:
        assert client.post("/paint/start", json={"username": "p1"}).status_code == 200
        assert _save(client, "before").status_code == 200
        filler = _fill(small_disk, leave_mb=FLOOR_MB // 2)

        refused = _save(client, "while full")
        body = refused.json()
        assert refused.status_code == 507 and body["code"] == 3 and not body["success"]
        assert "MB free" in body["message"] and "INSPILOT_MIN_FREE_MB" in body["message"]
        generate = {"appid": 0, "type": 0, "prompts": {"task": "杯子", "num": 1}}
        assert client.post("/generate", json=generate).status_code == 507
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["disk"]["ok"] is False
        assert str(small_disk) not in ready.text  # no file paths on the open endpoint
        stored = client.post("/paint/start", json={"username": "p1"}).json()["data"]
        assert stored["designTask"] == "before"  # nothing was written

        filler.unlink()
        assert _save(client, "after").status_code == 200  # no restart needed
        assert client.get("/health/ready").status_code == 200
        assert (
            client.post("/paint/start", json={"username": "p1"}).json()["data"]["designTask"]
            == "after"
        )


class ReadsButCannotWrite(InMemoryExperimentRepository):
    """Fault injection: a store in the state a WiredTiger panic leaves (reads, no writes)."""

    async def round_trip(self) -> None:
        raise StorageError("storage: the health write and read failed")

    async def save(self, experiment: Experiment) -> None:
        raise StorageError("storage: saving failed")


def test_readiness_fails_on_a_store_that_reads_but_cannot_write() -> None:
    container = build_container(Settings.load({"INSPILOT_STORAGE_BACKEND": "memory"}))
    container.repository.override(providers.Object(ReadsButCannotWrite()))
    with TestClient(create_app(container)) as client:
        response = client.get("/health/ready")
    assert response.status_code == 503
    storage = response.json()["checks"]["storage"]
    assert storage["ok"] is False and "write" in storage["detail"]


@pytest.mark.slow  # the embedded MongoDB-wire server
def test_a_floor_above_the_disk_refuses_saves_on_the_embedded_store(tmp_path: Path) -> None:
    settings = Settings.load(
        {"INSPILOT_DATA_DIR": str(tmp_path / "data"), "INSPILOT_MIN_FREE_MB": str(10**9)}
    )
    with TestClient(create_app(build_container(settings))) as client:
        client.post("/paint/start", json={"username": "p1"})
        refused = _save(client, "refused")
        assert refused.status_code == 507 and refused.json()["code"] == 3
        job = {"pipeline": "rapid_divergence", "inputs": {"task": "杯子", "num": 1}}
        assert client.post("/api/v1/jobs", json=job).status_code == 507
        assert (
            client.post("/paint/start", json={"username": "p1"}).json()["data"]["designTask"] == ""
        )


@pytest.mark.slow  # the embedded MongoDB-wire server
def test_a_lost_database_is_a_503_naming_storage_without_its_address_or_the_driver_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = EmbeddedMongoProcess(str(tmp_path / "db"))
    uri = server.start()
    address = uri.split("//", 1)[1].split("/", 1)[0]  # host:port
    settings = Settings.load(
        {
            "INSPILOT_STORAGE_BACKEND": "mongodb",
            "INSPILOT_MONGODB_URI": uri,
            "INSPILOT_MONGODB_TIMEOUT_MS": "500",
        }
    )
    caplog.handler.addFilter(RequestIdFilter())  # as the service's log handler does
    try:
        with TestClient(create_app(build_container(settings))) as client:
            assert client.post("/paint/start", json={"username": "p1"}).status_code == 200
            server.stop()
            for call in (
                lambda: client.post("/paint/start", json={"username": "p1"}),
                lambda: _save(client, "lost"),
            ):
                caplog.clear()
                reply = call()
                body = reply.json()
                assert reply.status_code == 503 and body["code"] == 3, body
                assert body["message"].startswith("storage: "), body
                assert address not in body["message"] and "Timeout" not in body["message"], body
                # The driver's words go to the log, with the request id.
                request_id = reply.headers["x-request-id"]
                logged = [r for r in caplog.records if address in r.getMessage()]
                ids = [getattr(r, "request_id", None) for r in logged]
                assert logged and all(found == request_id for found in ids), (request_id, ids)
    finally:
        server.stop()
