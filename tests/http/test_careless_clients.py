"""Careless and hostile input is a client error naming the field and the rule, changes
nothing, and cannot grow the service's own state (metric series)."""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from typing import Any

import pytest
from litestar.testing import TestClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from tests.http.conftest import memory_settings
from tests.http.test_operations import sample

NFC_JOSE = unicodedata.normalize("NFC", "José")
NFD_JOSE = unicodedata.normalize("NFD", "José")


def _save(username: str, task: str) -> dict[str, Any]:
    return {
        "username": username,
        "data": {"designSchemes": {}, "designTask": task, "currentStage": "准备"},
    }


def test_json_nested_a_thousand_deep_is_a_400_naming_the_limit_without_a_traceback(
    client: TestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    client.post("/paint/start", json={"username": "p1"})
    deep = "[" * 1000 + "]" * 1000
    body = (
        '{"username": "p1", "data": {"designSchemes": {"快速发散": [{"name": "a", "paths": '
        + deep
        + "}]}}}"
    ).encode()
    with caplog.at_level(logging.INFO):
        response = client.post(
            "/paint/save", content=body, headers={"Content-Type": "application/json"}
        )
    reply = response.json()
    assert response.status_code == 400 and reply["code"] == 1
    assert "deeper than" in reply["message"] and "levels" in reply["message"]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_random_methods_count_as_one_metric_label(client: TestClient[Any]) -> None:
    for n in range(30):
        client.request(f"M{n}X", "/ping")
    text = client.get("/metrics").text
    methods = {
        line.split('method="')[1].split('"')[0] for line in text.splitlines() if 'method="' in line
    }
    assert "other" in methods and not any(method.startswith("M") for method in methods), methods
    assert sample(
        text, "inspilot_http_requests_total", route="unmatched", method="other", status="405"
    ) or sample(text, "inspilot_http_requests_total", route="/ping", method="other", status="405")


def test_an_nfd_username_is_the_same_participant_as_the_nfc_one() -> None:
    container = build_container(memory_settings(INSPILOT_PARTICIPANTS=NFC_JOSE))
    with TestClient(create_app(container)) as client:
        assert client.post("/paint/start", json={"username": NFD_JOSE}).status_code == 200
        assert client.post("/paint/save", json=_save(NFC_JOSE, "同一人")).status_code == 200
        session = client.post("/paint/start", json={"username": NFD_JOSE}).json()["data"]
    assert session["designTask"] == "同一人" and session["username"] == NFC_JOSE


def test_a_job_for_a_username_outside_the_roster_is_refused_at_once() -> None:
    container = build_container(memory_settings(INSPILOT_PARTICIPANTS="p01"))
    job = {
        "pipeline": "rapid_divergence",
        "inputs": {"task": "杯子", "num": 1},
        "username": "stranger",
    }
    with TestClient(create_app(container)) as client:
        response = client.post("/api/v1/jobs", json=job)
        assert response.status_code == 403 and response.json()["code"] == 1
        assert "roster" in response.json()["message"]
        records = asyncio.run(container.repository().list_generations())
    assert records == []


def test_a_design_task_over_its_limit_is_a_400_naming_the_field_and_nothing_changes() -> None:
    container = build_container(memory_settings(INSPILOT_MAX_TASK_CHARS="100"))
    with TestClient(create_app(container)) as client:
        client.post("/paint/start", json={"username": "p1"})
        assert client.post("/paint/save", json=_save("p1", "kept")).status_code == 200
        response = client.post("/paint/save", json=_save("p1", "x" * 101))
        reply = response.json()
        assert response.status_code == 400 and reply["code"] == 1
        assert reply["message"].startswith("data.designTask: must be at most 100 characters")
        session = client.post("/paint/start", json={"username": "p1"}).json()["data"]
    assert session["designTask"] == "kept"


def test_a_query_parameter_of_the_wrong_type_is_a_400_naming_the_parameter() -> None:
    container = build_container(memory_settings(INSPILOT_RESEARCH_TOKEN="careless"))
    bearer = {"Authorization": "Bearer careless"}
    with TestClient(create_app(container)) as client:
        for path, field in (
            ("/api/v1/export?since=last-tuesday", "since"),
            ("/api/v1/export?until=2025-13-01", "until"),
            ("/api/v1/generations?limit=many", "limit"),
        ):
            reply = client.get(path, headers=bearer)
            body = reply.json()
            assert reply.status_code == 400 and body["code"] == 1, body
            # Litestar's own message was "Validation failed for GET <path>": no field, no rule.
            assert (
                body["message"].startswith(f"{field}: ")
                and "Validation failed" not in body["message"]
            ), body
