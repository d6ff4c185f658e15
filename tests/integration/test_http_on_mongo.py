"""Legacy endpoints on the Mongo adapter: restarts keep everything, big sessions come back whole."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from pymongo import monitoring

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings

# Slow: the service on the embedded MongoDB-wire server, with sessions of megabytes.
pytestmark = pytest.mark.slow


def _app(**environ: str) -> Any:
    return create_app(build_container(Settings.load(environ)))


def _mongo_app(uri: str, database: str) -> Any:
    return _app(
        INSPILOT_STORAGE_BACKEND="mongodb",
        INSPILOT_MONGODB_URI=uri,
        INSPILOT_MONGODB_DATABASE=database,
    )


def _sketch(index: int, size: int) -> str:
    return (
        "data:image/png;base64,"
        + base64.b64encode(b"\x89PNG\r\n\x1a\n" + os.urandom(size)).decode()
    )


def _scheme(index: int, sketch_bytes: int) -> dict[str, Any]:
    return {
        "name": f"方案{index}",
        "canvasSvg": f"<svg data-i='{index}'></svg>",
        "canvasImage": _sketch(index, sketch_bytes),
        "paths": [{"d": f"M{index} 0 L{i} {i * 0.5}", "w": 2.5} for i in range(200)],
        "texts": [{"text": f"注释{index}", "position": {"x": index, "y": 1.25}}],
    }


def _ok(response: Any) -> Any:
    body = response.json()
    assert response.status_code == 200 and body["success"], body
    return body["data"]


def test_a_new_app_on_the_same_database_has_every_session_and_record(
    mongodb_uri: str, mongo_database: str
) -> None:
    schemes = [_scheme(i, 2_000) for i in range(3)]
    with TestClient(_mongo_app(mongodb_uri, mongo_database)) as client:
        first = _ok(client.post("/paint/start", json={"username": "p1"}))
        _ok(
            client.post(
                "/paint/save",
                json={
                    "username": "p1",
                    "data": {
                        "designSchemes": {
                            "准备": None,
                            "快速发散": schemes,
                            "深入发散": [],
                            "收敛": [],
                        },
                        "designTask": "厨房",
                        "currentStage": "深入发散",
                    },
                },
            )
        )
        _ok(
            client.post(
                "/generate",
                json={
                    "appid": 0,
                    "type": 0,
                    "username": "p1",
                    "prompts": {"task": "厨房", "num": 2},
                },
            )
        )
    app = _mongo_app(mongodb_uri, mongo_database)
    with TestClient(app) as client:
        again = _ok(client.post("/paint/start", json={"username": "p1"}))
        repository = app.state.container.repository()
        records = client.blocking_portal.call(repository.list_generations, "p1")
    assert again["_id"] == first["_id"]
    assert again["rapidDivergenceSchemes"] == schemes
    assert again["currentStage"] == "深入发散"
    (record,) = records
    assert record.outcome.value == "succeeded" and len(record.image_steps) == 2
    assert all(step.image and step.image.startswith(b"\x89PNG") for step in record.image_steps)


def test_a_20_mb_session_saves_and_loads_byte_equal(mongodb_uri: str, mongo_database: str) -> None:
    schemes = [_scheme(i, 375_000) for i in range(40)]  # 40 sketches of 500 KB as base64
    save = {
        "username": "big",
        "data": {
            "designSchemes": {"快速发散": schemes, "深入发散": schemes[:5]},
            "designTask": "t",
            "currentStage": "快速发散",
        },
    }
    body = json.dumps(save, ensure_ascii=False).encode()
    assert len(body) > 20_000_000
    with TestClient(_mongo_app(mongodb_uri, mongo_database), timeout=120) as client:
        _ok(client.post("/paint/start", json={"username": "big"}))
        _ok(client.post("/paint/save", content=body, headers={"Content-Type": "application/json"}))
        raw = client.post("/paint/start", json={"username": "big"}).content
    loaded = json.loads(raw)["data"]
    assert json.dumps(loaded["rapidDivergenceSchemes"], ensure_ascii=False) == json.dumps(
        schemes, ensure_ascii=False
    )
    assert loaded["deepDivergenceSchemes"] == schemes[:5]


class _CommandRecorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append(json.dumps(event.command, default=str))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


@pytest.mark.parametrize(
    "username",
    [{"$ne": None}, {"$gt": ""}, ["a", "b"], "x" * 65, "$where", 7, None, {"$regex": ".*"}],
)
def test_malformed_usernames_never_reach_a_query(
    mongodb_uri: str, mongo_database: str, username: Any
) -> None:
    recorder = _CommandRecorder()
    monitoring.register(recorder)  # applies to clients created from now on: the app's
    with TestClient(_mongo_app(mongodb_uri, mongo_database)) as client:
        _ok(client.post("/paint/start", json={"username": "honest"}))
        before = len(recorder.commands)
        assert before > 0, "the recorder must see the honest request's queries"
        requests: list[tuple[str, dict[str, Any]]] = [
            ("/paint/start", {"username": username}),
            ("/paint/save", {"username": username, "data": {"designTask": "x"}}),
        ]
        if username is not None:  # /generate's username is optional, so null is fine there
            requests.append(
                (
                    "/generate",
                    {
                        "appid": 0,
                        "type": 0,
                        "username": username,
                        "prompts": {"task": "t", "num": 1},
                    },
                )
            )
        for path, body in requests:
            response = client.post(path, json=body)
            assert response.status_code == 400 and response.json()["code"] == 1
        after = recorder.commands[before:]
    assert not any(
        command.split('"', 3)[1] in {"find", "insert", "update", "findAndModify", "delete"}
        for command in after
    ), after


def test_the_embedded_default_keeps_sessions_across_restarts(tmp_path: Path) -> None:
    environ = {"INSPILOT_DATA_DIR": str(tmp_path / "data")}  # storage defaults to embedded
    assert Settings.load(environ).storage_backend == "embedded"
    scheme = _scheme(1, 10_000)
    with TestClient(_app(**environ)) as client:
        _ok(client.post("/paint/start", json={"username": "restart"}))
        _ok(
            client.post(
                "/paint/save",
                json={
                    "username": "restart",
                    "data": {
                        "designSchemes": {"收敛": [scheme]},
                        "designTask": "t",
                        "currentStage": "收敛",
                    },
                },
            )
        )
    with TestClient(_app(**environ)) as client:
        session = _ok(client.post("/paint/start", json={"username": "restart"}))
    assert session["convergenceSchemes"] == [scheme] and session["currentStage"] == "收敛"


def test_researchers_read_records_and_images_from_mongo(
    mongodb_uri: str, mongo_database: str
) -> None:
    app = _app(
        INSPILOT_STORAGE_BACKEND="mongodb",
        INSPILOT_MONGODB_URI=mongodb_uri,
        INSPILOT_MONGODB_DATABASE=mongo_database,
        INSPILOT_RESEARCH_TOKEN="t",
    )
    auth = {"Authorization": "Bearer t"}
    with TestClient(app) as client:
        _ok(
            client.post(
                "/generate",
                json={
                    "appid": 0,
                    "type": 0,
                    "username": "r",
                    "prompts": {"task": "厨房", "num": 3},
                },
            )
        )
        (listed,) = _ok(client.get("/api/v1/generations?username=r", headers=auth))
        urls = [step["imageUrl"] for step in listed["imageSteps"]]
        images = [client.get(url, headers=auth) for url in urls]
    assert len(urls) == 3 and all(url for url in urls)
    assert all(image.content.startswith(b"\x89PNG") for image in images)
    assert len({image.content for image in images}) == 3
