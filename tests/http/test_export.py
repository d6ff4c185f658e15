"""GET /api/v1/export: the archive is opened with the standard library only and checked whole."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from entrypoints.container import build_container
from entrypoints.export.archive import folder_name
from entrypoints.http.app import create_app
from tests.http.conftest import SKETCH, memory_settings

TOKEN = "export-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def study() -> Iterator[TestClient[Any]]:
    container = build_container(memory_settings(INSPILOT_RESEARCH_TOKEN=TOKEN))
    with TestClient(create_app(container)) as client:
        for username in ("p01", "../p02"):
            assert client.post("/paint/start", json={"username": username}).status_code == 200
        schemes = {
            "快速发散": [
                {"name": "伞", "canvasImage": SKETCH, "paths": [], "texts": []},
                {"name": "无图", "paths": [], "texts": []},
                {"name": "杯", "canvasImage": SKETCH, "paths": [], "texts": []},
            ],
            "深入发散": [{"name": "深", "canvasImage": SKETCH, "paths": []}],
            "收敛": [],
        }
        save = {
            "username": "p01",
            "data": {"designSchemes": schemes, "designTask": "雨具", "currentStage": "深入发散"},
        }
        assert client.post("/paint/save", json=save).status_code == 200
        for username in ("p01", "../p02", None):
            body = {"appid": 0, "type": 0, "prompts": {"task": "雨具", "num": 2}}
            if username:
                body["username"] = username
            else:
                client.cookies.clear()  # else the participant cookie names ../p02
            assert (
                client.post("/generate", json=body, headers={"X-Request-ID": "rq"}).status_code
                == 200
            )
        yield client


def _archive(client: TestClient[Any], **params: Any) -> zipfile.ZipFile:
    response = client.get("/api/v1/export", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith("attachment;")
    return zipfile.ZipFile(io.BytesIO(response.content))


def _rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    with archive.open(name) as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))


def test_the_archive_holds_every_table_file_and_picture(study: TestClient[Any]) -> None:
    archive = _archive(study)
    assert archive.testzip() is None
    names = set(archive.namelist())
    package = json.loads(archive.read("datapackage.json"))
    assert package["profile"] == "tabular-data-package"
    for resource in package["resources"]:
        header = next(csv.reader(io.TextIOWrapper(archive.open(resource["path"]), "utf-8")))
        assert header == [field["name"] for field in resource["schema"]["fields"]]

    sessions = {row["username"]: row for row in _rows(archive, "sessions.csv")}
    assert set(sessions) == {"p01", "../p02"}
    p01 = sessions["p01"]
    assert (p01["stage"], p01["design_task"]) == ("深入发散", "雨具")
    assert (p01["rapid_schemes"], p01["deep_schemes"], p01["convergence_schemes"]) == (
        "3",
        "1",
        "0",
    )
    assert p01["updated_at"].endswith("Z")
    p01_folder = f"participants/{folder_name('p01')}"
    assert json.loads(archive.read(f"{p01_folder}/session.json"))["designTask"] == "雨具"
    sketches = sorted(name for name in names if name.startswith(f"{p01_folder}/sketches/"))
    assert sketches == [
        f"{p01_folder}/sketches/deep_divergence-1.png",
        f"{p01_folder}/sketches/rapid_divergence-1.png",
        f"{p01_folder}/sketches/rapid_divergence-3.png",
    ]
    assert archive.read(sketches[0]).startswith(b"\x89PNG")
    # A username never escapes its folder.
    assert f"participants/{folder_name('../p02')}/session.json" in names
    assert not any(".." in name.split("/") for name in names)

    generations = _rows(archive, "generations.csv")
    assert sorted(row["username"] for row in generations) == ["", "../p02", "p01"]
    assert all(row["images"] == "2" and row["request_id"] == "rq" for row in generations)
    assert all(row["outcome"] == "succeeded" and row["text_models"] for row in generations)
    images = _rows(archive, "images.csv")
    for row in images:
        assert row["file"] in names and archive.read(row["file"]).startswith(b"\x89PNG")
    steps = _rows(archive, "text_steps.csv")
    assert all(row["template"].endswith(".txt") and row["template_version"] for row in steps)
    # One set version for every step and picture of a study made without edits.
    versions = {row["prompt_set_version"] for row in steps + images}
    assert len(versions) == 1 and len(versions.pop()) == 16
    for generation in generations:
        record = json.loads(archive.read(f"records/{generation['generation_id']}.json"))
        pictures = [step for step in record["imageSteps"] if not step["error"]]
        assert len(pictures) == 2
        for step in pictures:
            assert f"images/{record['id']}/{step['id']}.png" in names
        asked = {row["step"] for row in steps if row["generation_id"] == record["id"]}
        assert asked == {step["name"] for step in record["textSteps"]}


def test_filters_choose_participants_and_time(study: TestClient[Any]) -> None:
    archive = _archive(study, username=["p01", "../p02"])
    assert {row["username"] for row in _rows(archive, "generations.csv")} == {"p01", "../p02"}
    archive = _archive(study, username="p01")
    assert [row["username"] for row in _rows(archive, "sessions.csv")] == ["p01"]
    assert [row["username"] for row in _rows(archive, "generations.csv")] == ["p01"]
    later = _archive(study, since="2999-01-01T00:00:00")
    assert _rows(later, "sessions.csv") == [] and _rows(later, "generations.csv") == []
    earlier = _archive(study, until="2000-01-01T00:00:00Z")
    assert _rows(earlier, "images.csv") == []


def test_the_export_needs_the_token_or_the_dashboard_cookie(study: TestClient[Any]) -> None:
    assert study.get("/api/v1/export").status_code == 401
    bad = study.get(
        "/api/v1/export",
        params={"since": "2025-02-01T00:00:00", "until": "2025-01-01T00:00:00"},
        headers=AUTH,
    )
    assert bad.status_code == 400 and bad.json()["message"] == "until: must be later than since"
    study.post("/dashboard/login", data={"token": TOKEN})
    assert study.get("/api/v1/export").status_code == 200
