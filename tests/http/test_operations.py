"""Operators' endpoints: liveness, readiness checks, and the Prometheus metrics."""

from __future__ import annotations

import re
from typing import Any

from dependency_injector import providers
from litestar.testing import TestClient

from adapters.demo_text import DemoTextGenerator
from adapters.memory_repository import InMemoryExperimentRepository
from application.ports import TextAnswer, TextRequest
from domain.errors import StorageError
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.settings import REPO_ROOT
from tests.http.conftest import memory_settings

LISTED_METRICS = (
    "inspilot_http_requests_total",
    "inspilot_http_request_seconds",
    "inspilot_generations_total",
    "inspilot_generation_seconds",
    "inspilot_text_steps_total",
    "inspilot_text_step_seconds",
    "inspilot_sd_instance_healthy",
    "inspilot_sd_instance_busy",
    "inspilot_sd_jobs_total",
    "inspilot_sd_render_seconds",
    "inspilot_sd_queue_depth",
    "inspilot_sd_queue_wait_seconds",
    "inspilot_record_queue_depth",
    "inspilot_record_failures_total",
)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition, or None when it is absent."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if not match or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
        if found == labels:
            return float(match[3])
    return None


def test_live_answers_and_ready_reports_every_check(client: TestClient[Any]) -> None:
    assert client.get("/health/live").json() == {"live": True}
    response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200 and body["ready"] is True
    assert set(body["checks"]) == {"storage", "disk", "prompts", "sd", "text"}
    assert all(check["ok"] is True and check["detail"] for check in body["checks"].values())


class BrokenRepository(InMemoryExperimentRepository):
    async def get(self, username: str) -> Any:
        raise StorageError("storage: cannot reach MongoDB")

    async def round_trip(self) -> None:
        raise StorageError("storage: cannot reach MongoDB")


def test_ready_is_503_and_names_the_failing_check(container: Container) -> None:
    container.repository.override(providers.Object(BrokenRepository()))
    with TestClient(create_app(container)) as client:
        response = client.get("/health/ready")
    body = response.json()
    assert response.status_code == 503 and body["ready"] is False
    assert body["checks"]["storage"]["ok"] is False
    assert "cannot reach MongoDB" in body["checks"]["storage"]["detail"]
    assert body["checks"]["text"]["ok"] is True


def test_metrics_count_a_legacy_session_without_participant_data(client: TestClient[Any]) -> None:
    client.post("/paint/start", json={"username": "secret-participant"})
    body = {
        "appid": 0,
        "type": 0,
        "username": "secret-participant",
        "prompts": {"task": "保密任务", "num": 2},
    }
    assert client.post("/generate", json=body).status_code == 200
    client.post("/generate", json={"appid": 0, "type": 0, "prompts": {"task": "", "num": 2}})
    client.get("/no/such/secret-participant")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in LISTED_METRICS:
        assert f"# TYPE {name} " in text, name
    assert "secret-participant" not in text and "保密任务" not in text
    assert (
        sample(
            text, "inspilot_http_requests_total", route="/paint/start", method="POST", status="200"
        )
        == 1
    )
    assert (
        sample(text, "inspilot_http_requests_total", route="/generate", method="POST", status="400")
        == 1
    )
    assert (
        sample(text, "inspilot_http_requests_total", route="unmatched", method="GET", status="404")
        == 1
    )
    assert (
        sample(text, "inspilot_generations_total", pipeline="rapid_divergence", outcome="succeeded")
        == 1
    )
    assert sample(text, "inspilot_generation_seconds_count", pipeline="rapid_divergence") == 1
    # products, places, scene prompts, concepts: one attempt each.
    assert sample(text, "inspilot_text_steps_total", outcome="succeeded") == 4
    steps = ("products", "places", "scene_prompts", "concepts")
    for step in steps:
        key = f"paint/rapid_divergence/{step}"
        assert sample(text, "inspilot_text_step_seconds_count", step=key) == 1
    assert sample(text, "inspilot_generations_in_flight") == 0
    # The RecordWriter in front of the store: its queue is empty once the records are written.
    assert sample(text, "inspilot_record_queue_depth") is not None
    assert sample(text, "inspilot_record_failures_total") == 0


def test_metrics_follow_the_prometheus_conventions(client: TestClient[Any]) -> None:
    client.post("/paint/start", json={"username": "p1"})
    client.post("/paint/start", json={"username": ""})
    text = client.get("/metrics").text
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    for name in (
        "inspilot_http_request_seconds",
        "inspilot_generation_seconds",
        "inspilot_text_step_seconds",
        "inspilot_sd_render_seconds",
        "inspilot_sd_queue_wait_seconds",
    ):
        assert types[name] == "histogram", name
    assert "_created" not in text
    assert types["process_resident_memory_bytes"] == "gauge"
    assert types["python_info"] == "gauge"
    guide = (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for name in types:
        if name.startswith("inspilot_"):
            assert f"`{name}" in guide, f"{name} is not in docs/operations.md's metrics table"
    assert re.search(r'^inspilot_build_info\{version="[^"]+"\} 1\.0$', text, re.MULTILINE)
    labels = {"route": "/paint/start", "method": "POST"}
    assert sample(text, "inspilot_http_request_seconds_count", **labels, status_class="2xx") == 1
    assert sample(text, "inspilot_http_request_seconds_count", **labels, status_class="4xx") == 1


def test_research_routes_are_labelled_by_template() -> None:
    container = build_container(memory_settings(INSPILOT_RESEARCH_TOKEN="tok"))
    with TestClient(create_app(container)) as client:
        client.get("/api/v1/sessions/p-42", headers={"Authorization": "Bearer tok"})
        text = client.get("/metrics").text
    assert "p-42" not in text
    assert (
        sample(
            text,
            "inspilot_http_requests_total",
            route="/api/v1/sessions/{username}",
            method="GET",
            status="404",
        )
        == 1
    )


class QueuedRepository(InMemoryExperimentRepository):
    """A repository with a record queue, as the RecordWriter has."""

    def depth(self) -> int:
        return 7

    def failures(self) -> int:
        return 2


class TextWithEndpointStats(DemoTextGenerator):
    async def complete(self, request: TextRequest) -> TextAnswer:
        return await super().complete(request)

    def endpoint_stats(self) -> list[dict[str, Any]]:
        return [{"endpoint": "east", "in_flight": 3, "healthy": True, "note": "x"}]


def test_record_queue_and_text_endpoint_figures_come_from_the_adapters() -> None:
    container = build_container(memory_settings())
    container.repository.override(providers.Object(QueuedRepository()))
    container.text_generator.override(providers.Object(TextWithEndpointStats()))
    with TestClient(create_app(container)) as client:
        text = client.get("/metrics").text
    assert sample(text, "inspilot_record_queue_depth") == 7
    assert sample(text, "inspilot_record_failures_total") == 2
    assert sample(text, "inspilot_text_endpoint_in_flight", endpoint="east") == 3
    assert sample(text, "inspilot_text_endpoint_healthy", endpoint="east") == 1
    assert "inspilot_text_endpoint_note" not in text


def test_a_request_id_is_returned_kept_from_the_client_and_stored_in_the_record() -> None:
    container = build_container(memory_settings(INSPILOT_RESEARCH_TOKEN="tok"))
    body = {"appid": 0, "type": 0, "username": "r1", "prompts": {"task": "厨房", "num": 1}}
    with TestClient(create_app(container)) as client:
        made = client.get("/ping").headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        assert client.get("/ping").headers["x-request-id"] != made
        odd = client.get("/ping", headers={"X-Request-ID": "has spaces\tand tabs"})
        assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["x-request-id"])
        kept = client.post("/generate", json=body, headers={"X-Request-ID": "lb-7f3a:42"})
        assert kept.status_code == 200 and kept.headers["x-request-id"] == "lb-7f3a:42"
        records = client.get("/api/v1/generations", headers={"Authorization": "Bearer tok"}).json()[
            "data"
        ]
    assert [record["requestId"] for record in records] == ["lb-7f3a:42"]
