"""The whole service on real adapters: an OpenAI-compatible text server and six A1111 instances.

Both are fakes that speak the real wire protocols on loopback; the app is the one
`inspilot serve` runs, configured only through INSPILOT_* settings.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from adapters.demo_images import render_png
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fakes.inspilot_responder import inspilot_responder
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.sdapi_server import FakeSdServer, fake_sd_instances

# Slow: the whole service on real adapters against fake SD and OpenAI servers (renders
# over loopback; some wait out render timeouts and step deadlines).
pytestmark = pytest.mark.slow

SKETCH = "data:image/png;base64," + base64.b64encode(render_png(32, 24, 9)).decode()


@pytest.fixture(scope="module")
def text_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key="k", responder=inspilot_responder) as server:
        yield server


@pytest.fixture
def sd_servers() -> Iterator[list[FakeSdServer]]:
    with fake_sd_instances(6, latency_s=0.05) as servers:
        yield servers


def _settings(
    text_server: FakeOpenAIServer, sd_servers: list[FakeSdServer], **overrides: str
) -> Settings:
    return Settings.load(
        {
            "INSPILOT_TEXT_BACKEND": "openai",
            "INSPILOT_OPENAI_BASE_URL": text_server.openai_base_url,
            "INSPILOT_OPENAI_API_KEY": "k",
            "INSPILOT_OPENAI_MODEL": "gpt-test",
            "INSPILOT_OPENAI_VISION_MODEL": "gpt-vision-test",
            "INSPILOT_IMAGES_BACKEND": "sd",
            "INSPILOT_SD_INSTANCES": ",".join(server.url for server in sd_servers),
            "INSPILOT_SD_TIMEOUT_S": "5",
            "INSPILOT_TEXT_DEADLINE_S": "5",
            "INSPILOT_STORAGE_BACKEND": "memory",
            **overrides,
        }
    )


def _data(response: Any) -> Any:
    body = response.json()
    assert response.status_code == 200 and body["success"] is True, body
    return body["data"]


def _images(creatives: list[dict[str, Any]]) -> list[bytes]:
    found: list[bytes] = []
    for creative in creatives:
        for item in creative["items"]:
            parts = item["combinations"] or [item]
            found += [base64.b64decode(part["image"]) for part in parts if part["image"]]
    return found


def test_a_front_end_session_on_real_adapters(
    text_server: FakeOpenAIServer, sd_servers: list[FakeSdServer]
) -> None:
    with TestClient(create_app(build_container(_settings(text_server, sd_servers)))) as client:
        _data(client.post("/paint/start", json={"username": "e2e"}))
        rapid = _data(
            client.post(
                "/generate", json={"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 6}}
            )
        )
        assert rapid["count"] == 6
        assert all(image.startswith(b"\x89PNG") for image in _images(rapid["result"]))
        assert [item["text"] for c in rapid["result"] for item in c["items"] if item["text"]] == [
            f"答案{i}号" for i in range(1, 7)
        ]
        deep = _data(
            client.post(
                "/generate",
                json={
                    "appid": 0,
                    "type": 1,
                    "prompts": {
                        "designTask": "厨房",
                        "designTexts": ["折叠"],
                        "designImage": SKETCH,
                        "schemeId": 3,
                    },
                },
            )
        )
        assert deep["schemeId"] == 3 and len(_images(deep["result"])) == 3
        vision = [r for r in text_server.requests if r.has_images]
        assert vision and vision[-1].model == "gpt-vision-test"
        assert vision[-1].image_urls == (SKETCH,)
        select = _data(
            client.post(
                "/generate",
                json={
                    "appid": 0,
                    "type": 2,
                    "prompts": {
                        "designTask": "厨房",
                        "selectNum": 1,
                        "schemes": [
                            {"designTexts": ["a"], "designImage": SKETCH},
                            {"designTexts": []},
                        ],
                    },
                },
            )
        )
        assert len(select["names"]) == 2 and select["selected"] == select["names"][:1]
        expand = _data(
            client.post(
                "/generate",
                json={
                    "appid": 0,
                    "type": 3,
                    "prompts": {"selectedSchemes": [{"designTexts": ["a"]}], "num": 3},
                },
            )
        )
        assert len(expand["result"]) == 3 and len(_images(expand["result"])) == 6
    rendered = sum(server.counters.renders for server in sd_servers)
    assert rendered == 6 + 3 + 6
    assert sum(1 for server in sd_servers if server.counters.renders) >= 3


def test_one_instance_down_still_gives_every_picture(
    text_server: FakeOpenAIServer, sd_servers: list[FakeSdServer]
) -> None:
    sd_servers[2].down()
    with TestClient(create_app(build_container(_settings(text_server, sd_servers)))) as client:
        for _ in range(3):
            rapid = _data(
                client.post(
                    "/generate", json={"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 6}}
                )
            )
            images = _images(rapid["result"])
            assert len(images) == 6 and all(image.startswith(b"\x89PNG") for image in images)


def test_all_instances_down_is_an_honest_503(
    text_server: FakeOpenAIServer, sd_servers: list[FakeSdServer]
) -> None:
    for server in sd_servers:
        server.down()
    with TestClient(create_app(build_container(_settings(text_server, sd_servers)))) as client:
        response = client.post(
            "/generate", json={"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 2}}
        )
    body = response.json()
    assert response.status_code == 503 and body["code"] == 2 and body["data"] is None
    assert "retry-after" in response.headers


def test_text_model_unreachable_is_reported_not_a_count_mismatch(
    sd_servers: list[FakeSdServer],
) -> None:
    closed = FakeOpenAIServer()
    closed.port = 9  # discard port: nothing listens there
    settings = _settings(closed, sd_servers, INSPILOT_TEXT_DEADLINE_S="1")
    with TestClient(create_app(build_container(settings))) as client:
        response = client.post(
            "/generate", json={"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 2}}
        )
    body = response.json()
    assert response.status_code in (503, 504) and body["code"] == 2
    assert "mismatch" not in body["message"] and "expected" not in body["message"]


def test_every_instance_hanging_is_an_honest_504_with_no_partial_result(
    text_server: FakeOpenAIServer, sd_servers: list[FakeSdServer]
) -> None:
    for server in sd_servers:
        server.knobs.hang = True
    settings = _settings(
        text_server, sd_servers, INSPILOT_SD_TIMEOUT_S="0.5", INSPILOT_SD_QUEUE_WAIT_S="0.5"
    )
    with TestClient(create_app(build_container(settings))) as client:
        response = client.post(
            "/generate", json={"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 2}}
        )
    body = response.json()
    assert response.status_code in (503, 504), body
    assert body["success"] is False and body["code"] == 2 and body["data"] is None


def test_a_failed_request_frees_the_slots_of_its_other_images(
    text_server: FakeOpenAIServer, sd_servers: list[FakeSdServer]
) -> None:
    refusing, slow = sd_servers[0], sd_servers[1]
    refusing.knobs.status_code = 422  # a 4xx is reported, not retried elsewhere
    slow.knobs.latency_s = 30.0
    settings = _settings(text_server, sd_servers[:2], INSPILOT_SD_TIMEOUT_S="60")
    app = create_app(build_container(settings))
    with TestClient(app) as client:
        response = client.post(
            "/generate", json={"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 2}}
        )
        generator = app.state.container.image_generator()
        # The slow instance's abandoned render is interrupted; its slot frees once it is idle,
        # long before the 30 s render would have ended.
        deadline = time.monotonic() + 5
        while any(instance.busy for instance in generator.stats().instances):
            assert time.monotonic() < deadline, generator.stats()
            time.sleep(0.02)
        stats = generator.stats()
    assert response.status_code == 502 and response.json()["code"] == 2
    assert slow.counters.interrupts == 1
    assert stats.queue_length == 0
