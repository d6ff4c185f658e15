"""The legacy endpoints, driven the way the existing front end drives them."""

from __future__ import annotations

import base64
from typing import Any

from litestar.testing import TestClient

from entrypoints.container import Container
from tests.http.conftest import SKETCH

TASK = "为独居老人设计一款厨房用品"


def _ok(response: Any) -> Any:
    body = response.json()
    assert response.status_code == 200, body
    assert set(body) == {"success", "data", "code", "message"}
    assert body["success"] is True and body["code"] == 0
    return body["data"]


def _assert_item(item: dict[str, Any], item_type: str) -> None:
    assert set(item) == {"type", "text", "image", "combinations"}
    assert item["type"] == item_type
    if item_type.endswith("Image"):
        assert item["text"] is None and item["combinations"] is None
        assert not item["image"].startswith("data:")
        assert base64.b64decode(item["image"]).startswith(b"\x89PNG")
    elif item_type.endswith("Text"):
        assert item["image"] is None and item["combinations"] is None
        assert item["text"].strip()


def _scheme(name: str, texts: list[str], image: bool = True) -> dict[str, Any]:
    scheme: dict[str, Any] = {
        "name": name,
        "paths": [{"points": [[1.5, 2.25], [3, 4]], "color": "#000"}] * 50,
        "texts": [{"text": text, "position": {"x": 10, "y": 20.5}} for text in texts],
    }
    if image:
        scheme["canvasImage"] = SKETCH
        scheme["canvasSvg"] = "<svg xmlns='http://www.w3.org/2000/svg'></svg>"
    return scheme


def test_ping_answers_plain_pong(client: TestClient[Any]) -> None:
    assert client.get("/ping").text == "pong"
    assert client.post("/ping").text == "pong"


def test_a_whole_front_end_session(client: TestClient[Any]) -> None:
    session = _ok(client.post("/paint/start", json={"username": "p07"}))
    assert session == {
        "_id": session["_id"],
        "username": "p07",
        "currentStage": "准备",
        "designTask": "",
        "rapidDivergenceSchemes": [],
        "deepDivergenceSchemes": [],
        "convergenceSchemes": [],
    }
    for _ in range(2):
        data = _ok(
            client.post(
                "/generate", json={"appid": 0, "type": 0, "prompts": {"task": TASK, "num": 6}}
            )
        )
        assert data["count"] == 6 and len(data["result"]) == 6
        for creative in data["result"]:
            assert creative["type"] == 0 and creative["displayType"] == "sequence"
            _assert_item(creative["items"][0], "abstractImage")
            _assert_item(creative["items"][1], "abstractText")

    rapid = [_scheme("方案1", ["可以折叠", "带灯"]), _scheme("方案2", [], image=False)]
    design_schemes = {
        "准备": None,
        "快速发散": rapid,
        "深入发散": [],
        "收敛": [],
        "完成": None,
        "禁止": None,
    }
    save = {
        "username": "p07",
        "data": {"designSchemes": design_schemes, "designTask": TASK, "currentStage": "深入发散"},
    }
    assert _ok(client.post("/paint/save", json=save)) is None

    deep = _ok(
        client.post(
            "/generate",
            json={
                "appid": "0",
                "type": "1",
                "prompts": {
                    "designTask": TASK,
                    "designTexts": ["可以折叠", "带灯"],
                    "designImage": SKETCH,
                    "schemeId": 0,
                },
            },
        )
    )
    assert deep["schemeId"] == 0 and deep["count"] == 3 and len(deep["result"]) == 3
    for creative in deep["result"]:
        assert creative["type"] == 2 and creative["displayType"] == "sequence"
        for item, kind in zip(
            creative["items"], ["abstractImage", "abstractText", "concreteText"], strict=True
        ):
            _assert_item(item, kind)

    select = _ok(
        client.post(
            "/generate",
            json={
                "appid": 0,
                "type": 2,
                "prompts": {
                    "designTask": TASK,
                    "selectNum": 2,
                    "schemes": [
                        {"designTexts": ["可以折叠"], "designImage": SKETCH},
                        {"designTexts": [], "designImage": None},
                        {"designTexts": ["保温"]},
                    ],
                },
            },
        )
    )
    assert len(select["names"]) == 3 and len(set(select["names"])) == 3
    assert len(select["selected"]) == 2 and set(select["selected"]) <= set(select["names"])

    expand = _ok(
        client.post(
            "/generate",
            json={
                "appid": 0,
                "type": 3,
                "prompts": {
                    "selectedSchemes": [{"designTexts": ["可以折叠"]}, {"designTexts": []}],
                    "num": 2,
                },
            },
        )
    )
    assert len(expand["result"]) == 4
    for creative in expand["result"]:
        assert creative["type"] == 4 and creative["displayType"] == "direct"
        (group,) = creative["items"]
        assert set(group) == {"type", "text", "image", "combinations"}
        assert group["type"] == "groupTypeTwo" and group["text"] is None
        for item, kind in zip(
            group["combinations"], ["abstractImage", "concreteImage", "concreteText"], strict=True
        ):
            _assert_item(item, kind)

    again = _ok(client.post("/paint/start", json={"username": "p07"}))
    assert again["_id"] == session["_id"]
    assert again["currentStage"] == "深入发散" and again["designTask"] == TASK
    assert again["rapidDivergenceSchemes"] == rapid
    assert again["deepDivergenceSchemes"] == [] and again["convergenceSchemes"] == []


async def test_every_generation_is_recorded(client: TestClient[Any], container: Container) -> None:
    _ok(
        client.post(
            "/generate",
            json={"appid": 0, "type": 0, "username": "p08", "prompts": {"task": TASK, "num": 2}},
        )
    )
    client.post("/generate", json={"appid": 0, "type": 0, "prompts": {"task": "", "num": 2}})
    records = await container.repository().list_generations()
    assert len(records) == 1
    assert records[0].username == "p08" and records[0].inputs == {"task": TASK, "num": 2}


def test_duplicates_are_done_as_asked(client: TestClient[Any]) -> None:
    body = {
        "appid": 0,
        "type": 3,
        "prompts": {"selectedSchemes": [{"designTexts": ["a"]}], "num": 1},
    }
    assert len(_ok(client.post("/generate", json=body))["result"]) == 1
    assert len(_ok(client.post("/generate", json=body))["result"]) == 1


def test_schemes_come_back_byte_equal(client: TestClient[Any]) -> None:
    _ok(client.post("/paint/start", json={"username": "exact"}))
    odd = {
        "name": "ü\u2028",
        "paths": [0.1, 1e-7, 12345678901234567890, -0.0, True, None],
        "texts": [],
        "$weird.key": {"nested": ["x"]},
        "canvasImage": SKETCH,
    }
    save = {
        "username": "exact",
        "data": {"designSchemes": {"收敛": [odd]}, "designTask": "t", "currentStage": "收敛"},
    }
    _ok(client.post("/paint/save", json=save))
    raw = client.post("/paint/start", json={"username": "exact"}).content
    import json

    assert json.loads(raw)["data"]["convergenceSchemes"] == [odd]


def test_cors_allows_the_configured_front_end(client: TestClient[Any]) -> None:
    preflight = client.options(
        "/generate",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    response = client.post(
        "/paint/start", json={"username": "c"}, headers={"Origin": "http://localhost:3000"}
    )
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    stranger = client.post(
        "/paint/start", json={"username": "c"}, headers={"Origin": "http://evil.example"}
    )
    assert "access-control-allow-origin" not in stranger.headers


def test_openapi_schema_is_served(client: TestClient[Any]) -> None:
    schema = client.get("/schema/openapi.json").json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {"paintStart", "paintSave", "generate"} <= operations
