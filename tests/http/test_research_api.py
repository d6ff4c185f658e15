"""The researchers' read-only API: off without a token, and every record's steps and images."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from tests.http.conftest import SKETCH, memory_settings

TOKEN = "research-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def research_client() -> Iterator[TestClient[Any]]:
    container = build_container(memory_settings(INSPILOT_RESEARCH_TOKEN=TOKEN))
    with TestClient(create_app(container)) as client:
        yield client


def _ok(response: Any) -> Any:
    body = response.json()
    assert response.status_code == 200 and body["success"], body
    return body["data"]


def test_the_api_is_off_without_a_configured_token(client: TestClient[Any]) -> None:
    response = client.get("/api/v1/generations", headers=AUTH)
    assert response.status_code == 403
    assert "INSPILOT_RESEARCH_TOKEN" in response.json()["message"]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}]
)
def test_a_missing_or_wrong_token_is_refused(
    research_client: TestClient[Any], headers: dict[str, str]
) -> None:
    response = research_client.get("/api/v1/generations", headers=headers)
    assert response.status_code == 401 and response.json()["success"] is False


def test_records_show_every_step_and_link_their_images(research_client: TestClient[Any]) -> None:
    client = research_client
    _ok(client.post("/paint/start", json={"username": "r1"}))
    _ok(
        client.post(
            "/generate",
            json={"appid": 0, "type": 0, "username": "r1", "prompts": {"task": "厨房", "num": 2}},
        )
    )
    client.cookies.clear()  # a browser other than r1's: nothing names its participant
    _ok(
        client.post(
            "/generate",
            json={
                "appid": 0,
                "type": 1,
                "prompts": {
                    "designTask": "厨房",
                    "designTexts": ["折叠"],
                    "designImage": SKETCH,
                    "schemeId": 0,
                },
            },
        )
    )

    mine = _ok(client.get("/api/v1/generations", params={"username": "r1"}, headers=AUTH))
    assert [record["pipeline"] for record in mine] == ["rapid_divergence"]
    everyone = _ok(client.get("/api/v1/generations", params={"limit": 10}, headers=AUTH))
    assert [record["pipeline"] for record in everyone] == ["deep_divergence", "rapid_divergence"]

    record = _ok(client.get(f"/api/v1/generations/{mine[0]['id']}", headers=AUTH))
    assert record["outcome"] == "succeeded" and record["inputs"] == {"task": "厨房", "num": 2}
    steps = {step["name"].rsplit("/", 1)[-1] for step in record["textSteps"]}
    assert steps == {"products", "places", "scene_prompts", "concepts"}
    assert all(step["prompt"] and step["rawAnswer"] for step in record["textSteps"])
    assert all(
        step["template"] == step["name"] + ".txt" and len(step["templateVersion"]) == 16
        for step in record["textSteps"]
    )
    serving = client.app.state["container"].prompts().set_version
    for step in record["textSteps"] + record["imageSteps"]:
        assert step["promptSetVersion"] == serving
    assert len(record["imageSteps"]) == 2
    for step in record["imageSteps"]:
        assert step["template"] == "paint/images/scene" and step["templateVersion"]
        image = client.get(step["imageUrl"], headers=AUTH)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")


def test_sessions_are_read_without_being_created(research_client: TestClient[Any]) -> None:
    client = research_client
    missing = client.get("/api/v1/sessions/ghost", headers=AUTH)
    assert missing.status_code == 404
    _ok(client.post("/paint/start", json={"username": "r2"}))
    session = _ok(client.get("/api/v1/sessions/r2", headers=AUTH))
    assert session["username"] == "r2" and session["createdAt"]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/v1/generations?limit=0", 400, "limit: must be between 1 and 500"),
        ("/api/v1/generations?limit=many", 400, ""),
        ("/api/v1/generations/nope", 404, "id: no generation record 'nope'"),
        ("/api/v1/generations/nope/images/x", 404, "image: no image 'x'"),
        ("/api/v1/sessions/%24where", 400, "username: must not start with '$'"),
    ],
)
def test_bad_research_queries_get_the_envelope(
    research_client: TestClient[Any], path: str, status: int, message: str
) -> None:
    response = research_client.get(path, headers=AUTH)
    body = response.json()
    assert response.status_code == status and body["success"] is False
    assert message in body["message"]
