"""The dashboard without a browser: the token gate, the cookie, escaping and the "now" panel."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from application.monitoring import RunMonitor
from application.ports import RunStarted
from domain.generation import GenerationRecord, Outcome, Pipeline, TextStep
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.http.free_space import FreeSpace
from tests.http.conftest import SKETCH, memory_settings

TOKEN = "dash-secret"
T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def dashboard() -> Iterator[tuple[TestClient[Any], Container]]:
    container = build_container(memory_settings(INSPILOT_RESEARCH_TOKEN=TOKEN))
    with TestClient(create_app(container)) as client:
        yield client, container


def _log_in(client: TestClient[Any]) -> None:
    response = client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie


def test_nothing_is_shown_without_the_token(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    client, _ = dashboard
    client.post("/paint/start", json={"username": "p01"})
    for path in ("/dashboard", "/dashboard/participant?username=p01"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/dashboard/login"
    assert client.get("/dashboard/now.json").status_code == 401
    wrong = client.post("/dashboard/login", data={"token": "guess"}, follow_redirects=False)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    client.cookies.set("inspilot_research", "guess")
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_the_dashboard_is_off_without_a_configured_token(client: TestClient[Any]) -> None:
    response = client.get("/dashboard/login")
    assert response.status_code == 403 and "INSPILOT_RESEARCH_TOKEN" in response.text
    refused = client.post("/dashboard/login", data={"token": ""}, follow_redirects=False)
    assert refused.status_code == 403 and "set-cookie" not in refused.headers


def test_the_cookie_opens_the_research_api_and_logout_closes_it(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    client, _ = dashboard
    assert client.get("/api/v1/generations").status_code == 401
    _log_in(client)
    assert client.get("/api/v1/generations").status_code == 200
    out = client.post("/dashboard/logout", follow_redirects=False)
    assert out.status_code == 303 and 'inspilot_research=""' in out.headers["set-cookie"]
    client.cookies.clear()
    assert client.get("/api/v1/generations").status_code == 401


def test_participant_data_is_escaped(dashboard: tuple[TestClient[Any], Container]) -> None:
    client, _ = dashboard
    evil = "<script>alert(1)</script>"
    scheme = {"name": evil, "canvasImage": "javascript:alert(1)", "paths": [], "texts": []}
    client.post("/paint/start", json={"username": "p01"})
    body = {
        "username": "p01",
        "data": {
            "designSchemes": {"快速发散": [scheme, {"name": "ok", "canvasImage": SKETCH}]},
            "designTask": evil,
            "currentStage": "快速发散",
        },
    }
    assert client.post("/paint/save", json=body).json()["success"] is True
    _log_in(client)
    page = client.get("/dashboard/participants/p01")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert evil not in page.text and "&lt;script&gt;" in page.text
    assert "javascript:alert" not in page.text  # only data:image pictures become <img>
    assert page.text.count('<img src="data:image/png;base64,') == 1
    assert evil not in client.get("/dashboard").text
    assert client.get("/dashboard/participants/nobody").status_code == 404


def test_the_now_panel_shows_runs_in_flight_and_recent_text_errors(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    client, container = dashboard
    monitor: RunMonitor = container.run_monitor()
    monitor.run_started(RunStarted("r1", Pipeline.DEEP_DIVERGENCE, "p01", "req-1", T0))
    monitor.run_started(RunStarted("r2", Pipeline.RAPID_DIVERGENCE, None, "req-2", T0))
    failed_step = TextStep("paint/deep_divergence/identify", "p", T0, T0, error="model timed out")
    monitor.run_finished(
        GenerationRecord(
            Pipeline.RAPID_DIVERGENCE, {}, T0, T0, Outcome.FAILED, (failed_step,), id="r2"
        )
    )
    _log_in(client)
    now = client.get("/dashboard/now.json").json()
    assert [(run["id"], run["username"], run["request_id"]) for run in now["in_flight"]] == [
        ("r1", "p01", "req-1")
    ]
    assert [(e["step"], e["error"], e["generation_id"]) for e in now["text"]["recent_errors"]] == [
        ("paint/deep_divergence/identify", "model timed out", "r2")
    ]
    assert now["sd"] == {"backend": "demo", "queue": 0, "instances": []}
    assert now["records"] == {"queue": 0, "failures": 0}  # the RecordWriter's queue


DISK_BANNER = re.compile(r'<p class="alert" id="disk-low" role="alert"( hidden)?>')


def _warned(page: str) -> bool:
    banner = DISK_BANNER.search(page)
    assert banner is not None, "the page has no disk banner"
    return banner[1] is None


def test_the_free_space_is_on_the_dashboard_and_a_disk_below_the_floor_is_a_warning() -> None:
    free_mb = [5000]
    container = build_container(
        memory_settings(INSPILOT_RESEARCH_TOKEN=TOKEN, INSPILOT_MIN_FREE_MB="1024")
    )
    disk = FreeSpace("/data-disk", 1024, measure=lambda _: free_mb[0])
    container.free_space.override(providers.Object(disk))
    save = {"username": "p01", "data": {"designTask": "厨房"}}
    with TestClient(create_app(container)) as client:
        client.post("/paint/start", json={"username": "p01"})
        _log_in(client)
        page = client.get("/dashboard").text
        assert "5000 MB free on the data disk (floor 1024 MB)" in page
        assert not _warned(page)
        now = client.get("/dashboard/now.json").json()["disk"]
        assert (now["free_mb"], now["floor_mb"], now["low"]) == (5000, 1024, False)

        free_mb[0] = 300
        page = client.get("/dashboard").text
        assert _warned(page)
        assert "300 MB free on the data disk (floor 1024 MB); saves and generations" in page
        now = client.get("/dashboard/now.json").json()["disk"]
        assert (now["free_mb"], now["low"]) == (300, True) and "refused" in now["detail"]
        # The same reading refuses saves and fails readiness.
        assert client.post("/paint/save", json=save).status_code == 507
        assert client.get("/health/ready").json()["checks"]["disk"]["ok"] is False

        free_mb[0] = 2000  # space freed: no restart
        assert not _warned(client.get("/dashboard").text)
        assert client.get("/dashboard/now.json").json()["disk"]["low"] is False
        assert client.post("/paint/save", json=save).status_code == 200


def test_a_generation_shows_on_the_participants_page_and_in_the_list(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    client, container = dashboard
    client.post("/paint/start", json={"username": "p02"})
    body = {"appid": 0, "type": 0, "username": "p02", "prompts": {"task": "厨房", "num": 2}}
    assert client.post("/generate", json=body).status_code == 200
    (record,) = asyncio.run(container.repository().list_generations())
    _log_in(client)
    index = client.get("/dashboard").text
    assert 'href="/dashboard/participant?username=p02"' in index
    assert f"generation-{record.id}" in index
    page = client.get("/dashboard/participants/p02").text
    for step in record.image_steps:
        assert f'src="/api/v1/generations/{record.id}/images/{step.id}"' in page
    for step in record.text_steps:
        assert step.template_version is not None and step.template_version in page
    assert 'href="/api/v1/export?username=p02"' in page


def test_a_generations_inputs_are_readable(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    client, _ = dashboard
    client.post("/paint/start", json={"username": "p03"})
    prompts = {
        "designTask": "为独居老人设计",
        "designTexts": ["可以折叠", "带灯"],
        "designImage": SKETCH,
        "schemeId": 5,
    }
    body = {"appid": 0, "type": 1, "username": "p03", "prompts": prompts}
    assert client.post("/generate", json=body).status_code == 200
    _log_in(client)
    page = client.get("/dashboard/participants/p03").text
    assert "为独居老人设计" in page and "可以折叠" in page and "\\u4e3a" not in page
    # The sketch is a thumbnail, never a data URI printed as text.
    assert page.count(SKETCH) == 1 and f'class="sketch-thumb" src="{SKETCH}"' in page


def test_a_generation_shows_its_stimuli_as_shown_in_order(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    client, container = dashboard
    body = {"appid": 0, "type": 0, "username": "p04", "prompts": {"task": "厨房", "num": 2}}
    client.post("/paint/start", json={"username": "p04"})
    reply = client.post("/generate", json=body).json()["data"]
    (record,) = asyncio.run(container.repository().list_generations())
    _log_in(client)
    page = client.get("/dashboard/participants/p04").text
    shown = page[page.index('class="shown"') :]
    concepts = [creative["items"][1]["text"] for creative in reply["result"]]
    urls = [
        f"/api/v1/generations/{record.id}/images/{s.image_id}" for s in record.stimuli if s.image_id
    ]
    # Picture 1, its concept, picture 2, its concept: the order the participant saw.
    marks = [
        shown.index(urls[0]),
        shown.index(concepts[0]),
        shown.index(urls[1]),
        shown.index(concepts[1]),
    ]
    assert marks == sorted(marks)


def test_the_dashboard_and_the_research_api_share_one_guard(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    """The bearer token the research API takes opens the dashboard's pages too, and a page
    refused by that guard sends the browser to the login form."""
    research_client, _ = dashboard
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert research_client.get("/dashboard", headers=bearer).status_code == 200
    assert research_client.get("/dashboard/now.json", headers=bearer).status_code == 200
    wrong = {"Authorization": "Bearer nope"}
    refused = research_client.get("/dashboard", headers=wrong, follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"] == "/dashboard/login"
