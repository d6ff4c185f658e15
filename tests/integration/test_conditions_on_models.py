"""Each condition's generations reach the real model protocols with its own prompt set,
text model and image options, as the fake OpenAI and A1111 servers see them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fakes.inspilot_responder import inspilot_responder
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.sdapi_server import FakeSdServer, fake_sd_instances
from tests.http.test_conditions import study_file

# Slow: a study's conditions end to end on fake SD and OpenAI servers over loopback.
pytestmark = pytest.mark.slow

TYPE_0 = {"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 2}}


@pytest.fixture
def servers() -> Iterator[tuple[FakeOpenAIServer, list[FakeSdServer]]]:
    with (
        FakeOpenAIServer(api_key="k", responder=inspilot_responder) as text,
        fake_sd_instances(2, latency_s=0.01) as images,
    ):
        yield text, images


def _client(tmp_path: Path, text: FakeOpenAIServer, images: list[FakeSdServer]) -> Any:
    settings = Settings.load(
        {
            "INSPILOT_TEXT_BACKEND": "openai",
            "INSPILOT_OPENAI_BASE_URL": text.openai_base_url,
            "INSPILOT_OPENAI_API_KEY": "k",
            "INSPILOT_OPENAI_MODEL": "gpt-base",
            "INSPILOT_IMAGES_BACKEND": "sd",
            "INSPILOT_SD_INSTANCES": ",".join(server.url for server in images),
            "INSPILOT_STORAGE_BACKEND": "memory",
            "INSPILOT_STUDY_FILE": str(study_file(tmp_path, "prefix")),
        }
    )
    return TestClient(create_app(build_container(settings)))


def _seen(images: list[FakeSdServer]) -> list[dict[str, Any]]:
    return [options for server in images for options in server.counters.options]


def test_each_condition_uses_its_prompts_model_and_image_options(
    tmp_path: Path, servers: tuple[FakeOpenAIServer, list[FakeSdServer]]
) -> None:
    text, images = servers
    with _client(tmp_path, text, images) as client:
        assert client.post("/c/vivid/generate", json=TYPE_0).status_code == 200
        vivid_requests = list(text.requests)
        vivid_images = _seen(images)
        assert client.post("/c/baseline/generate", json=TYPE_0).status_code == 200
        baseline_requests = text.requests[len(vivid_requests) :]
        every_image = _seen(images)

    assert {request.model for request in vivid_requests} == {"gpt-vivid"}
    assert {request.model for request in baseline_requests} == {"gpt-base"}
    first_vivid = vivid_requests[0].messages[-1]["content"]
    first_baseline = baseline_requests[0].messages[-1]["content"]
    assert "生动版本：" in str(first_vivid) and "生动版本：" not in str(first_baseline)
    assert [(o["steps"], o["cfg_scale"]) for o in vivid_images] == [(20, 7.0)] * 2
    # The baseline's two pictures: the prompt set's own options (per-server order aside).
    assert (
        sorted((o["steps"], o["cfg_scale"]) for o in every_image)
        == [(20, 7.0)] * 2 + [(30, 5.0)] * 2
    )
