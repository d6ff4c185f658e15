"""Several text endpoints behind the app: no failed request with one down, fast 503s with all."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fakes.inspilot_responder import inspilot_responder
from tests.fakes.openai_server import FakeOpenAIServer, Fault
from tests.http.test_operations import sample

# Slow: the service waits out dead endpoints' deadlines and cooldowns.
pytestmark = pytest.mark.slow

TOKEN = "research-token"
DEADLINE_S = 3.0
RAPID = {"appid": 0, "type": 0, "prompts": {"task": "为独居老人设计厨房用品", "num": 3}}


@pytest.fixture
def pair() -> Iterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    with (
        FakeOpenAIServer(api_key="key-a", responder=inspilot_responder) as a,
        FakeOpenAIServer(api_key="key-b", responder=inspilot_responder) as b,
    ):
        yield a, b


def _container(a: FakeOpenAIServer, b: FakeOpenAIServer) -> Container:
    entries = [
        {"name": name, "kind": "openai", "base_url": fake.openai_base_url, "model": "m",
         "vision_model": "v", "api_key_env": f"KEY_{name.upper()}"}
        for name, fake in (("a", a), ("b", b))
    ]  # fmt: skip
    settings = Settings.load(
        {
            "INSPILOT_TEXT_BACKEND": "endpoints",
            "INSPILOT_TEXT_ENDPOINTS": json.dumps(entries),
            "KEY_A": "key-a",
            "KEY_B": "key-b",
            "INSPILOT_TEXT_DEADLINE_S": str(DEADLINE_S),
            "INSPILOT_STORAGE_BACKEND": "memory",
            "INSPILOT_RESEARCH_TOKEN": TOKEN,
        }
    )
    return build_container(settings)


def test_with_one_endpoint_dead_no_request_fails_and_records_name_who_answered(
    pair: tuple[FakeOpenAIServer, FakeOpenAIServer],
) -> None:
    dead, alive = pair
    dead.always = Fault.server_error(500)
    with TestClient(create_app(_container(dead, alive))) as client:
        statuses = [client.post("/generate", json=RAPID).status_code for _ in range(6)]
        records = client.get(
            "/api/v1/generations", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()["data"]
        metrics = client.get("/metrics").text
    assert statuses == [200] * 6
    endpoints = {step["endpoint"] for record in records for step in record["textSteps"]}
    assert endpoints == {"b"}
    failed = sample(metrics, "inspilot_text_calls_total", endpoint="a", outcome="server_error")
    answered = sample(metrics, "inspilot_text_calls_total", endpoint="b", outcome="ok")
    # Three in a row cool it down; a call sent beside the third may fail while it cools.
    assert failed in (3, 4) and answered is not None and answered >= 6 * 4
    assert sample(metrics, "inspilot_text_endpoint_cooldowns_total", endpoint="a") == 1
    assert sample(metrics, "inspilot_text_endpoint_healthy", endpoint="a") == 0
    assert sample(metrics, "inspilot_text_endpoint_healthy", endpoint="b") == 1


def test_with_every_endpoint_dead_only_the_first_request_waits_then_503s_until_a_probe_passes(
    pair: tuple[FakeOpenAIServer, FakeOpenAIServer],
) -> None:
    a, b = pair
    a.always = b.always = Fault.server_error(502)
    container = _container(a, b)
    with TestClient(create_app(container)) as client:
        first = client.post("/generate", json=RAPID)
        assert first.status_code == 503 and first.json()["code"] == 2
        # It gave up within its step's deadline: the reply names the deadline it honoured.
        assert f"deadline of {DEADLINE_S:g}s" in first.json()["message"]
        calls = a.request_count + b.request_count
        a.always = b.always = None  # back, but nothing may go there before a probe says so
        for _ in range(4):
            # At once: the known outage is the answer, and no call goes out (counted below).
            later = client.post("/generate", json=RAPID)
            body = later.json()
            assert (later.status_code, body["code"], body["success"]) == (503, 2, False)
            assert "cooling down" in body["message"] and "key-a" not in body["message"]
            assert 1 <= int(later.headers["retry-after"]) <= 5
        assert a.request_count + b.request_count == calls
        _wait_for_a_probe(container)
        resumed = client.post("/generate", json=RAPID)
    assert resumed.status_code == 200, resumed.text
    probes = [seen for seen in a.requests + b.requests if seen.max_tokens == 1]
    assert probes and all(seen.model == "m" for seen in probes)


def _wait_for_a_probe(container: Container) -> None:
    generator = container.text_generator()
    for _ in range(300):  # generous: the first cooldown is 5 s
        if any(row["healthy"] for row in generator.endpoint_stats()):
            return
        time.sleep(0.05)
    raise AssertionError("no probe brought an endpoint back")
