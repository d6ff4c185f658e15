"""Readiness and metrics follow the SD pool: fake A1111 instances going down and coming back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fakes.sdapi_server import FakeSdServer, fake_sd_instances
from tests.http.test_operations import sample


@pytest.fixture
def sd_servers() -> Iterator[list[FakeSdServer]]:
    with fake_sd_instances(2, latency_s=0.02) as servers:
        yield servers


def _client(sd_servers: list[FakeSdServer]) -> TestClient[Any]:
    settings = Settings.load(
        {
            "INSPILOT_IMAGES_BACKEND": "sd",
            "INSPILOT_SD_INSTANCES": ",".join(server.url for server in sd_servers),
            "INSPILOT_SD_HEALTH_INTERVAL_S": "0.2",
            "INSPILOT_STORAGE_BACKEND": "memory",
        }
    )
    return TestClient(create_app(build_container(settings)))


def _until(condition: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


@pytest.mark.slow  # cooldown waits and probes
def test_ready_turns_503_when_every_instance_is_down_and_200_when_one_is_back(
    sd_servers: list[FakeSdServer],
) -> None:
    with _client(sd_servers) as client:
        first = client.get("/health/ready").json()
        assert first["ready"] is True and first["checks"]["sd"]["detail"].startswith("2 of 2")
        for server in sd_servers:
            server.down()
        _until(lambda: client.get("/health/ready").status_code == 503, within_s=5)
        body = client.get("/health/ready").json()
        assert body["ready"] is False and body["checks"]["sd"] == {
            "ok": False,
            "detail": "0 of 2 SD instances healthy",
        }
        assert body["checks"]["storage"]["ok"] is True
        text = client.get("/metrics").text
        assert sample(text, "inspilot_sd_instance_healthy", instance=sd_servers[0].url) == 0
        sd_servers[1].up()
        # Cooldowns grow while an instance stays down (2 s, then 4 s, ...).
        _until(lambda: client.get("/health/ready").status_code == 200, within_s=20)
        assert client.get("/health/ready").json()["checks"]["sd"]["detail"].startswith("1 of 2")


def test_sd_jobs_and_queue_figures_are_read_from_the_pool(sd_servers: list[FakeSdServer]) -> None:
    with _client(sd_servers) as client:
        body = {"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 4}}
        assert client.post("/generate", json=body).status_code == 200
        text = client.get("/metrics").text
    urls = [server.url for server in sd_servers]
    succeeded = [
        sample(text, "inspilot_sd_jobs_total", instance=url, outcome="succeeded") for url in urls
    ]
    assert sum(value or 0 for value in succeeded) == 4
    assert (
        sum(sample(text, "inspilot_sd_render_seconds_count", instance=url) or 0 for url in urls)
        == 4
    )
    assert all(sample(text, "inspilot_sd_instance_busy", instance=url) == 0 for url in urls)
    assert sample(text, "inspilot_sd_queue_depth") == 0
    assert sample(text, "inspilot_sd_queue_wait_seconds_count") == 4
    # Histograms: every job in the +Inf bucket, each bucket at most the next one.
    for url in urls:
        counts = [
            sample(text, "inspilot_sd_render_seconds_bucket", instance=url, le=le)
            for le in ("0.5", "1.0", "300.0", "+Inf")
        ]
        assert counts == sorted(counts), counts
    infinite = "inspilot_sd_render_seconds_bucket"
    assert sum(sample(text, infinite, instance=url, le="+Inf") or 0 for url in urls) == 4
    assert sample(text, "inspilot_sd_queue_wait_seconds_bucket", le="+Inf") == 4
