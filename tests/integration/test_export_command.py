"""`inspilot export`: from MongoDB when no service runs, through the service when one does."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from entrypoints.cli import main
from entrypoints.container import build_container
from entrypoints.export.archive import folder_name
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fakes.uvicorn_thread import free_port, served
from tests.http.conftest import SKETCH

# Slow: the export reads the embedded MongoDB-wire server, once through a served app.
pytestmark = pytest.mark.slow

TOKEN = "cli-secret"


def _environment(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> Settings:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings.load(values)


def _make_session(client: Any, username: str) -> None:
    """Through the legacy endpoints, with a TestClient or an httpx client alike."""
    post = client.post
    assert post("/paint/start", json={"username": username}).status_code == 200
    scheme = {"name": "伞", "canvasImage": SKETCH, "paths": [], "texts": []}
    save = {
        "username": username,
        "data": {
            "designSchemes": {"快速发散": [scheme]},
            "designTask": "雨具",
            "currentStage": "快速发散",
        },
    }
    assert post("/paint/save", json=save).status_code == 200
    body = {"appid": 0, "type": 0, "username": username, "prompts": {"task": "雨具", "num": 2}}
    assert post("/generate", json=body).status_code == 200


def _check(path: Path, username: str) -> None:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        sessions = list(csv.DictReader(io.TextIOWrapper(archive.open("sessions.csv"), "utf-8")))
        images = list(csv.DictReader(io.TextIOWrapper(archive.open("images.csv"), "utf-8")))
    assert [row["username"] for row in sessions] == [username]
    assert f"participants/{folder_name(username)}/sketches/rapid_divergence-1.png" in names
    assert len(images) == 2 and all(row["file"] in names for row in images)


def test_export_reads_the_store_when_no_service_runs(
    monkeypatch: pytest.MonkeyPatch, mongodb_uri: str, mongo_database: str, tmp_path: Path
) -> None:
    settings = _environment(
        monkeypatch,
        {
            "INSPILOT_STORAGE_BACKEND": "mongodb",
            "INSPILOT_MONGODB_URI": mongodb_uri,
            "INSPILOT_MONGODB_DATABASE": mongo_database,
            "INSPILOT_PORT": str(free_port()),  # nothing listens there
        },
    )
    with TestClient(create_app(build_container(settings))) as client:
        _make_session(client, "p01")
        _make_session(client, "p02")
    out = tmp_path / "study.zip"
    assert main(["export", "--out", str(out), "--username", "p02"]) == 0
    _check(out, "p02")
    assert not (tmp_path / "study.zip.partial").exists()


def test_export_goes_through_the_running_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings.load(
        {"INSPILOT_STORAGE_BACKEND": "memory", "INSPILOT_RESEARCH_TOKEN": TOKEN}
    )
    with served(create_app(build_container(settings))) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            _make_session(client, "p03")
        port = url.rsplit(":", 1)[1]
        _environment(monkeypatch, {"INSPILOT_PORT": port, "INSPILOT_STORAGE_BACKEND": "memory"})
        out = tmp_path / "via-service.zip"
        assert main(["export", "--out", str(out)]) == 1  # no token: refused, nothing written
        assert not out.exists()
        monkeypatch.setenv("INSPILOT_RESEARCH_TOKEN", TOKEN)
        assert main(["export", "--out", str(out), "--since", "2000-01-01T00:00:00Z"]) == 0
    _check(out, "p03")
