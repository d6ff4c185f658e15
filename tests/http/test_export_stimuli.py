"""The export says what each participant saw: stimuli.csv row by row equals each reply, the
sketches sent are files, and Frictionless validates the package, foreign keys included."""

from __future__ import annotations

import base64
import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import frictionless
from litestar.testing import TestClient

from adapters.demo_images import render_png
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from tests.http.conftest import memory_settings

TOKEN = "stimuli-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SKETCH_A = render_png(40, 30, 11)
SKETCH_B = render_png(48, 36, 12)


def _uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    with archive.open(name) as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))


def _generate(client: TestClient[Any], kind: int, prompts: dict[str, Any], user: str | None) -> Any:
    body: dict[str, Any] = {"appid": 0, "type": kind, "prompts": prompts}
    if user:
        body["username"] = user
    response = client.post("/generate", json=body)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _leaves(creative: dict[str, Any]) -> list[dict[str, Any]]:
    return [part for item in creative["items"] for part in (item["combinations"] or [item])]


def test_stimuli_inputs_and_the_package(tmp_path: Path) -> None:
    container = build_container(memory_settings(INSPILOT_RESEARCH_TOKEN=TOKEN))
    with TestClient(create_app(container)) as client:
        client.post("/paint/start", json={"username": "p01"})
        replies = [
            _generate(client, 0, {"task": "雨具", "num": 2}, "p01"),
            _generate(
                client,
                1,
                {
                    "designTask": "雨具",
                    "designTexts": ["折叠"],
                    "designImage": _uri(SKETCH_A),
                    "schemeId": "3",
                },
                "p01",
            ),
            _generate(
                client,
                2,
                {
                    "designTask": "雨具",
                    "selectNum": 1,
                    "schemes": [
                        {"designTexts": ["伞"], "designImage": _uri(SKETCH_A)},
                        {"designTexts": ["帽"], "designImage": _uri(SKETCH_B)},
                        {"designTexts": ["衣"]},
                    ],
                },
                # Generated under a name that never started a session.
                "p02",
            ),
            _generate(client, 3, {"selectedSchemes": [{"designTexts": ["伞"]}], "num": 2}, None),
        ]
        response = client.get("/api/v1/export", headers=AUTH)
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    generations = _rows(archive, "generations.csv")
    stimuli = _rows(archive, "stimuli.csv")
    assert len(generations) == 4

    by_pipeline = {row["pipeline"]: row for row in generations}
    for pipeline, reply in zip(
        ["rapid_divergence", "deep_divergence", "converge_expand"],
        [replies[0], replies[1], replies[3]],
        strict=True,
    ):
        generation = by_pipeline[pipeline]
        rows = [row for row in stimuli if row["generation_id"] == generation["generation_id"]]
        expected = [
            (str(number), str(position), leaf["type"], leaf["text"] or "", leaf["image"])
            for number, creative in enumerate(reply["result"], 1)
            for position, leaf in enumerate(_leaves(creative), 1)
        ]
        assert len(rows) == len(expected)
        for (number, position, kind, text, picture), row in zip(expected, rows, strict=True):
            assert (row["creative"], row["position"], row["kind"], row["text"]) == (
                number,
                position,
                kind,
                text,
            )
            if picture:  # the file holds the very picture the reply carried
                assert archive.read(row["file"]) == base64.b64decode(picture)
            else:
                assert row["file"] == ""
        assert all(row["username"] == generation["username"] for row in rows)

    # The research API's record carries the same rows.
    deep_rows = [
        r for r in stimuli if r["generation_id"] == by_pipeline["deep_divergence"]["generation_id"]
    ]
    record = json.loads(archive.read(f"records/{deep_rows[0]['generation_id']}.json"))
    assert [(s["kind"], s["text"] or "") for s in record["stimuli"]] == [
        (r["kind"], r["text"]) for r in deep_rows
    ]

    select = by_pipeline["converge_select"]
    names = [row for row in stimuli if row["generation_id"] == select["generation_id"]]
    assert [row["text"] for row in names] == replies[2]["names"]
    assert [row["text"] for row in names if row["selected"] == "true"] == replies[2]["selected"]
    assert {row["kind"] for row in names} == {"name"} and all(r["creative"] == "" for r in names)

    # Sketches sent are files, byte-equal, each stored once however many records sent it.
    deep = by_pipeline["deep_divergence"]
    assert (deep["task"], deep["scheme_id"], deep["design_texts"]) == ("雨具", "3", "折叠")
    (deep_file,) = deep["sketch_files"].split(";")
    assert archive.read(deep_file) == SKETCH_A
    select_files = select["sketch_files"].split(";")
    assert select_files[0] == deep_file and archive.read(select_files[1]) == SKETCH_B
    assert len(select_files) == 2 and select["select_num"] == "1"
    assert sorted(n for n in archive.namelist() if n.startswith("inputs/")) == sorted(select_files)
    assert by_pipeline["rapid_divergence"]["num"] == "2"

    # p02 never started a session; the foreign key still finds them in sessions.csv.
    assert {row["username"] for row in _rows(archive, "sessions.csv")} == {"p01", "p02"}

    archive.extractall(tmp_path)
    report = frictionless.validate(tmp_path / "datapackage.json")
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    resources = {
        r["name"]: r
        for r in frictionless.Package(tmp_path / "datapackage.json").to_descriptor()["resources"]
    }
    assert resources["stimuli"]["schema"]["foreignKeys"][1]["reference"]["resource"] == "images"
    assert (
        resources["generations"]["schema"]["foreignKeys"][0]["reference"]["resource"] == "sessions"
    )
