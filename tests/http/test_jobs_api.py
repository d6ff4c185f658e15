"""Generation jobs: start, follow the events, read the result and pictures, cancel midway."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from domain.errors import ModelUnavailable
from entrypoints.container import Container
from entrypoints.http.app import create_app
from tests.http.conftest import SKETCH
from tests.unit.fakes import FakeImageGenerator

JOBS = "/api/v1/jobs"
TASK = "为独居老人设计一款厨房用品"

INPUTS: dict[str, tuple[dict[str, Any], int]] = {
    "rapid_divergence": ({"task": TASK, "num": 2}, 2),
    "deep_divergence": (
        {"design_task": TASK, "design_texts": ["可以折叠"], "design_image": SKETCH, "scheme_id": 4},
        3,
    ),
    "converge_select": (
        {
            "design_task": TASK,
            "select_num": 1,
            "schemes": [{"design_texts": ["折叠"], "design_image": SKETCH}, {"design_texts": []}],
        },
        0,
    ),
    "converge_expand": ({"selected_schemes": [{"design_texts": ["折叠"]}], "num": 2}, 4),
}


def _data(response: Any, status: int = 200) -> Any:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"success", "data", "code", "message"} and body["success"] is True
    return body["data"]


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields.get("data") or "{}")))
    return events


def _wait(check: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.01)


@pytest.fixture
def slow_images(container: Container) -> FakeImageGenerator:
    images = FakeImageGenerator(latency_s=60)
    container.image_generator.override(providers.Object(images))
    return images


@pytest.fixture
def slow_client(container: Container, slow_images: FakeImageGenerator) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(container)) as client:
        yield client


@pytest.mark.parametrize("pipeline", list(INPUTS))
async def test_a_job_from_post_through_its_events_to_its_result(
    client: TestClient[Any], container: Container, pipeline: str
) -> None:
    inputs, pictures = INPUTS[pipeline]
    created = _data(
        client.post(JOBS, json={"pipeline": pipeline, "inputs": inputs, "username": "j1"}), 202
    )
    assert set(created) == {"id", "generationId", "status", "eventsUrl", "resultUrl"}
    assert created["status"] in {"queued", "running"}
    assert created["eventsUrl"] == f"{JOBS}/{created['id']}/events"

    events = _events(client.get(created["eventsUrl"]).text)
    names = [name for name, _ in events]
    assert names[-1] == "done" and names.count("done") == 1
    assert events[-1][1] == {
        "resultUrl": created["resultUrl"],
        "generationId": created["generationId"],
    }
    steps = [data for name, data in events if name == "step"]
    assert {step["status"] for step in steps} == {"started", "finished"}
    for step in steps:
        assert set(step) == {"step", "status", "attempt", "seconds"} and step["attempt"] == 1
        assert (step["seconds"] is None) == (step["status"] == "started")
    started = [step["step"] for step in steps if step["status"] == "started"]
    assert sorted(started) == sorted(s["step"] for s in steps if s["status"] == "finished")
    images = [data for name, data in events if name == "image"]
    assert [image["done"] for image in images] == list(range(1, pictures + 1))
    assert all(image["total"] == pictures for image in images)

    job = _data(client.get(created["resultUrl"]))
    assert job["status"] == "done" and job["pipeline"] == pipeline and job["error"] is None
    assert job["generationId"] == created["generationId"]
    text = json.dumps(job["result"])
    assert "base64" not in text and "iVBOR" not in text  # never inline pictures
    urls = [
        item["image"]
        for creative in job["result"].get("result", [])
        for group in creative["items"]
        for item in [group, *(group["combinations"] or [])]
        if item["image"]
    ]
    assert len(urls) == pictures
    for url in urls:
        assert url.startswith(f"{JOBS}/{created['id']}/images/")
        picture = client.get(url)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        assert picture.content.startswith(b"\x89PNG")

    (record,) = await container.repository().list_generations()
    assert record.pipeline.value == pipeline and record.username == "j1"
    assert record.outcome.value == "succeeded" and record.source.value == "job"
    # The job names its record: the id opens it in the research API.
    assert record.id == created["generationId"]


def test_a_late_subscriber_gets_every_event_from_the_start(client: TestClient[Any]) -> None:
    inputs, _ = INPUTS["rapid_divergence"]
    created = _data(client.post(JOBS, json={"pipeline": "rapid_divergence", "inputs": inputs}), 202)
    _wait(lambda: _data(client.get(created["resultUrl"]))["status"] == "done", "the job")
    first = _events(client.get(created["eventsUrl"]).text)
    again = _events(client.get(created["eventsUrl"]).text)
    assert first == again and first[0][0] == "step" and first[-1][0] == "done"


async def test_cancelling_midway_frees_the_slots_at_once(
    slow_client: TestClient[Any], slow_images: FakeImageGenerator, container: Container
) -> None:
    client = slow_client
    inputs, _ = INPUTS["rapid_divergence"]
    created = _data(client.post(JOBS, json={"pipeline": "rapid_divergence", "inputs": inputs}), 202)
    _wait(lambda: slow_images.in_flight == 2, "both pictures rendering")
    assert _data(client.get(created["resultUrl"]))["status"] == "running"

    cancelled = _data(client.delete(created["resultUrl"]))
    assert cancelled["status"] == "cancelled" and cancelled["result"] is None
    assert slow_images.in_flight == 0  # freed before DELETE answered
    events = _events(client.get(created["eventsUrl"]).text)
    assert events[-1] == ("cancelled", {"generationId": created["generationId"]})
    assert [name for name, _ in events].count("cancelled") == 1
    (record,) = await container.repository().list_generations()
    assert record.id == created["generationId"] and record.source.value == "job"
    assert record.outcome.value == "cancelled"
    assert record.error == "cancelled: the job was cancelled by its client"


def test_running_jobs_are_limited_per_user(slow_client: TestClient[Any]) -> None:
    client = slow_client
    inputs, _ = INPUTS["rapid_divergence"]
    body = {"pipeline": "rapid_divergence", "inputs": inputs, "username": "busy"}
    ids = [_data(client.post(JOBS, json=body), 202)["id"] for _ in range(4)]
    refused = client.post(JOBS, json=body)
    assert refused.status_code == 429
    assert refused.json()["code"] == 1 and "at most 4 running jobs" in refused.json()["message"]
    _data(client.post(JOBS, json={**body, "username": "other"}), 202)
    _data(client.delete(f"{JOBS}/{ids[0]}"))
    _data(client.post(JOBS, json=body), 202)  # a cancelled job no longer counts


def test_a_job_runs_to_its_end_when_its_client_goes_away(client: TestClient[Any]) -> None:
    inputs, _ = INPUTS["converge_expand"]
    created = _data(client.post(JOBS, json={"pipeline": "converge_expand", "inputs": inputs}), 202)
    with client.stream("GET", created["eventsUrl"]) as stream:
        next(stream.iter_lines())
    _wait(lambda: _data(client.get(created["resultUrl"]))["status"] == "done", "the job")


def test_a_failed_job_reports_code_and_message(container: Container) -> None:
    failure = ModelUnavailable("image model: all 2 instances are down")
    container.image_generator.override(providers.Object(FakeImageGenerator(fail_with=failure)))
    inputs, _ = INPUTS["rapid_divergence"]
    with TestClient(create_app(container)) as client:
        created = _data(
            client.post(JOBS, json={"pipeline": "rapid_divergence", "inputs": inputs}), 202
        )
        events = _events(client.get(created["eventsUrl"]).text)
        job = _data(client.get(created["resultUrl"]))
    assert events[-1] == (
        "failed",
        {"code": 2, "message": str(failure), "generationId": created["generationId"]},
    )
    assert job["status"] == "failed" and job["error"] == {"code": 2, "message": str(failure)}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{JOBS}/nope"),
        ("DELETE", f"{JOBS}/nope"),
        ("GET", f"{JOBS}/nope/events"),
        ("GET", f"{JOBS}/nope/images/x"),
    ],
)
def test_unknown_jobs_are_404(client: TestClient[Any], method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 404 and response.json()["code"] == 1
    assert "no job 'nope'" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"pipeline": "rapid_divergence", "inputs": {"task": "t", "num": 0}}, "inputs.num: must"),
        (
            {"pipeline": "rapid_divergence", "inputs": {"task": "t", "num": "6"}, "username": 5},
            "username: must be a string",
        ),
        ({"pipeline": "nope", "inputs": {}}, "pipeline: invalid value 'nope'"),
        ({"inputs": {}}, "pipeline: is required"),
        (
            {"pipeline": "converge_select", "inputs": {"design_task": "t", "select_num": 1}},
            "inputs.schemes: is required",
        ),
        (
            {"pipeline": "deep_divergence", "inputs": {"design_task": "t", "scheme_id": 1}},
            "inputs.design_texts: a scheme needs texts or a design_image",
        ),
        (
            {
                "pipeline": "converge_select",
                "inputs": {
                    "design_task": "t",
                    "select_num": 1,
                    "schemes": [{"designImage": 1, "design_image": "x"}],
                },
            },
            "inputs.schemes[0].design_image: must be a PNG or JPEG",
        ),
    ],
)
async def test_bad_jobs_are_refused_and_start_nothing(
    client: TestClient[Any], container: Container, body: dict[str, Any], message: str
) -> None:
    response = client.post(JOBS, json=body)
    assert response.status_code == 400 and message in response.json()["message"]
    assert await container.repository().list_generations() == []
