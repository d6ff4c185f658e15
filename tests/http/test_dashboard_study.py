"""The dashboard as a tool to study with: filtered, paged generations with a summary, the
step waterfall, the self-refreshing participant table's data, and the favicon."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from domain.generation import GenerationRecord, Outcome, Pipeline, TextStep
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from tests.http.conftest import memory_settings

TOKEN = "study-secret"
T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


def _record(number: int, **fields: Any) -> GenerationRecord:
    started = T0 + timedelta(minutes=number)
    values: dict[str, Any] = {
        "pipeline": Pipeline.RAPID_DIVERGENCE,
        "inputs": {"task": f"任务{number}", "num": 2},
        "started_at": started,
        "finished_at": started + timedelta(seconds=number % 10 + 1),
        "outcome": Outcome.SUCCEEDED,
        "username": "p01",
        "id": f"{number:024x}",
    }
    values.update(fields)
    return GenerationRecord(**values)


@pytest.fixture
def dashboard() -> Iterator[tuple[TestClient[Any], Container]]:
    # The records are stored from the test's own event loop, where the record writer's
    # workers do not run: its queue must hold all 120 of them.
    settings = memory_settings(INSPILOT_RESEARCH_TOKEN=TOKEN, INSPILOT_RECORD_QUEUE_MAX="1000")
    container = build_container(settings)
    with TestClient(create_app(container)) as client:
        client.post("/dashboard/login", data={"token": TOKEN})
        yield client, container


def _store(container: Container, records: list[GenerationRecord]) -> None:
    async def add() -> None:
        repository = container.repository()
        for record in records:
            await repository.add_generation(record)

    asyncio.run(add())


def _shown_ids(page: str) -> list[str]:
    return re.findall(r'data-generation="([0-9a-f]{24})"', page)


def test_generations_page_fifty_at_a_time_newest_first_with_the_filter_in_the_links(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    client, container = dashboard
    _store(container, [_record(n) for n in range(1, 121)])
    first = client.get("/dashboard/generations", params={"participant": "p01"}).text
    assert _shown_ids(first) == [f"{n:024x}" for n in range(120, 70, -1)]
    assert "Page 1 of 3" in first
    assert 'href="/dashboard/generations?participant=p01&amp;page=2"' in first
    third = client.get("/dashboard/generations", params={"participant": "p01", "page": 3}).text
    assert _shown_ids(third) == [f"{n:024x}" for n in range(20, 0, -1)]
    assert 'rel="prev" href="/dashboard/generations?participant=p01&amp;page=2"' in third


def test_filters_and_the_summary_of_the_filtered_set(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    client, container = dashboard
    step = TextStep("paint/deep_divergence/identify", "p", T0, T0, template_version="abcd1234")
    records = [
        _record(1, finished_at=T0 + timedelta(minutes=1, seconds=2)),
        _record(2, finished_at=T0 + timedelta(minutes=2, seconds=4)),
        _record(3, outcome=Outcome.FAILED, finished_at=T0 + timedelta(minutes=3, seconds=10)),
        _record(4, pipeline=Pipeline.DEEP_DIVERGENCE, text_steps=(step,), username="p02"),
        _record(5, outcome=Outcome.ABANDONED, condition="visual"),
    ]
    _store(container, records)

    page = client.get("/dashboard/generations", params={"pipeline": "rapid_divergence"}).text
    summary = page[page.index('id="summary"') :]
    row = re.search(r'data-pipeline="rapid_divergence">(.*?)</tr>', summary, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row[1])
    # 4 runs of 2, 4, 10 and 6 s; 2 succeeded; nearest-rank p50 4 s, p95 10 s.
    assert cells == ["rapid_divergence", "4", "50 %", "4.00", "10.00"]
    assert 'data-pipeline="deep_divergence"' not in summary

    def ids(**query: str) -> list[str]:
        return _shown_ids(client.get("/dashboard/generations", params=query).text)

    assert ids(outcome="failed") == [f"{3:024x}"]
    assert ids(outcome="abandoned") == [f"{5:024x}"]
    assert ids(participant="p02") == [f"{4:024x}"]
    assert ids(template_version="abcd1234") == [f"{4:024x}"]
    assert ids(condition="visual") == [f"{5:024x}"]
    assert ids(since="2025-05-01T08:02:00", until="2025-05-01T08:04:00Z") == [
        f"{3:024x}",
        f"{2:024x}",
    ]
    refused = client.get("/dashboard/generations", params={"outcome": "exploded"})
    assert refused.status_code == 400 and "outcome: must be one of" in refused.text


def test_a_generation_shows_its_steps_on_a_time_axis(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    client, container = dashboard
    steps = (
        TextStep("paint/rapid_divergence/products", "p", T0, T0 + timedelta(seconds=2)),
        TextStep(
            "paint/rapid_divergence/concepts",
            "p",
            T0 + timedelta(seconds=2),
            T0 + timedelta(seconds=5),
            error="unusable",
        ),
    )
    record = _record(0, started_at=T0, finished_at=T0 + timedelta(seconds=10), text_steps=steps)
    _store(container, [record])
    page = client.get("/dashboard/generations").text
    bars = re.findall(
        r'<g class="bar( failed-bar)?" data-offset="([\d.]+)" data-width="([\d.]+)"', page
    )
    assert bars == [("", "0.0", "20.0"), (" failed-bar", "20.0", "30.0")]
    assert "products #1 · 2.00 s" in page and "concepts #1 · 3.00 s" in page


def test_the_participant_table_and_the_favicon(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    client, _ = dashboard
    client.post("/paint/start", json={"username": "新人"})
    rows = client.get("/dashboard/participants.json").json()
    assert [row["username"] for row in rows] == ["新人"]
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.content.startswith(b"<svg")
    client.post("/dashboard/logout")
    assert client.get("/dashboard/participants.json").status_code == 401
    assert client.get("/dashboard/generations", follow_redirects=False).status_code == 303


def test_a_participants_timeline_and_time_per_stage(
    dashboard: tuple[TestClient[Any], Container],
) -> None:
    client, _ = dashboard
    client.post("/paint/start", json={"username": "p05"})
    for stage in ("快速发散", "快速发散", "深入发散"):
        save = {
            "username": "p05",
            "data": {"designSchemes": {stage: []}, "designTask": "t", "currentStage": stage},
        }
        assert client.post("/paint/save", json=save).status_code == 200
    body = {"appid": 0, "type": 0, "username": "p05", "prompts": {"task": "厨房", "num": 1}}
    assert client.post("/generate", json=body).status_code == 200
    page = client.get("/dashboard/participant", params={"username": "p05"}).text
    moments = re.findall(
        r'<circle class="moment (\w+) (\w+)" data-at="[^"]+" data-label="([^"]*)"', page
    )
    assert [(row, kind) for row, kind, _ in moments] == [
        ("session", "start"),
        ("session", "stage"),
        ("session", "save"),
        ("session", "stage"),
        ("generations", "succeeded"),
    ]
    assert moments[1][2].startswith("快速发散") and moments[3][2].startswith("深入发散")
    times = page[page.index('id="stage-times"') :]
    assert [name for name in re.findall(r"<tr><td>([^<]+)</td>", times)] == [
        "准备",
        "快速发散",
        "深入发散",
    ]
