"""Live prompt edits while the service runs: watched, swapped for the next generation,
a broken edit refused with the old version serving and readiness and the dashboard naming it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from tests.http.conftest import memory_settings

TOKEN = "research-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PRODUCTS = "paint/rapid_divergence/products.txt"
MARKER = "每种产品都要能单手使用。"


@pytest.fixture
def live(prompt_copy: Path) -> Iterator[TestClient[Any]]:
    settings = memory_settings(
        INSPILOT_PROMPTS_DIR=str(prompt_copy),
        INSPILOT_PROMPTS_DEBOUNCE_MS="50",
        INSPILOT_PROMPTS_WATCH="true",
        INSPILOT_RESEARCH_TOKEN=TOKEN,
    )
    with TestClient(create_app(build_container(settings))) as client:
        yield client


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.05)


def _products_step(client: TestClient[Any]) -> dict[str, Any]:
    """Run one type 0 generation and return its products step, as the research API shows it."""
    body = {"appid": 0, "type": 0, "username": None, "prompts": {"task": "阳台种菜", "num": 2}}
    reply = client.post("/generate", json=body)
    assert reply.status_code == 200 and reply.json()["success"], reply.text
    (latest,) = client.get("/api/v1/generations", params={"limit": 1}, headers=AUTH).json()["data"]
    record = client.get(f"/api/v1/generations/{latest['id']}", headers=AUTH).json()["data"]
    return next(s for s in record["textSteps"] if s["name"].endswith("/products"))


def _prompts_check(client: TestClient[Any]) -> tuple[int, dict[str, Any]]:
    response = client.get("/health/ready")
    return response.status_code, response.json()["checks"]["prompts"]


def test_an_edit_serves_the_next_generation_with_a_new_version(
    live: TestClient[Any], prompt_copy: Path
) -> None:
    catalog = live.app.state["container"].prompts()
    first = _products_step(live)
    assert MARKER not in first["prompt"] and first["promptSetVersion"] == catalog.set_version

    path = prompt_copy / PRODUCTS
    path.write_text(path.read_text(encoding="utf-8") + "\n" + MARKER, encoding="utf-8")
    _wait_for(lambda: catalog.set_version != first["promptSetVersion"], "the edit is swapped in")

    second = _products_step(live)
    assert MARKER in second["prompt"]
    assert second["promptSetVersion"] == catalog.set_version != first["promptSetVersion"]
    assert second["templateVersion"] != first["templateVersion"]
    assert f"version {catalog.set_version}" in _prompts_check(live)[1]["detail"]


def test_a_broken_edit_is_refused_and_named_while_the_old_version_serves(
    live: TestClient[Any], prompt_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = live.app.state["container"].prompts()
    serving = catalog.set_version
    caplog.set_level(logging.ERROR, logger="inspilot.prompts")
    path = prompt_copy / PRODUCTS
    path.write_text(path.read_text(encoding="utf-8") + "\n$tsak", encoding="utf-8")
    _wait_for(lambda: catalog.refused is not None, "the broken edit is refused")

    status, check = _prompts_check(live)
    assert status == 200 and check["ok"] is True  # still ready: the old version works
    assert "products.txt: unknown placeholder $tsak" in check["detail"]
    assert "still serving the last good version" in check["detail"]
    assert str(prompt_copy) not in check["detail"]  # readiness is open: no machine paths
    assert any(
        "prompt edit refused" in r.message and "products.txt" in r.message and "$tsak" in r.message
        for r in caplog.records
    )
    step = _products_step(live)
    assert step["promptSetVersion"] == serving and "$tsak" not in step["prompt"]

    live.post("/dashboard/login", data={"token": TOKEN})
    page = live.get("/dashboard").text
    assert "edit refused" in page and "unknown placeholder $tsak" in page

    # Mended: the refusal clears and readiness no longer names it.
    path.write_text(path.read_text(encoding="utf-8").replace("$tsak", "$task"), encoding="utf-8")
    _wait_for(lambda: catalog.refused is None, "the mended set is swapped in")
    assert "edit refused" not in _prompts_check(live)[1]["detail"]
    assert "edit refused" not in live.get("/dashboard").text


def test_watching_can_be_switched_off(prompt_copy: Path) -> None:
    settings = memory_settings(
        INSPILOT_PROMPTS_DIR=str(prompt_copy), INSPILOT_PROMPTS_WATCH="false"
    )
    with TestClient(create_app(build_container(settings))) as client:
        catalog = client.app.state["container"].prompts()
        serving = catalog.set_version
        path = prompt_copy / PRODUCTS
        path.write_text(path.read_text(encoding="utf-8") + "\n" + MARKER, encoding="utf-8")
        time.sleep(1.0)
        assert catalog.set_version == serving
