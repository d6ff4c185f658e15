"""A participant who leaves mid-generation frees the SD slots at once (served by uvicorn)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from domain.generation import ABANDONED_MESSAGE
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fakes.inspilot_responder import inspilot_responder
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.sdapi_server import fake_sd_instances
from tests.fakes.uvicorn_thread import served

# Slow: a uvicorn-served app in front of SD renders of 4 s.
pytestmark = pytest.mark.slow


@pytest.fixture
def served_app() -> Iterator[tuple[Any, str]]:
    with (
        FakeOpenAIServer(api_key="k", responder=inspilot_responder) as text,
        fake_sd_instances(2, latency_s=4.0) as sd,
    ):
        settings = Settings.load(
            {
                "INSPILOT_TEXT_BACKEND": "openai",
                "INSPILOT_OPENAI_BASE_URL": text.openai_base_url,
                "INSPILOT_OPENAI_API_KEY": "k",
                "INSPILOT_OPENAI_MODEL": "m",
                "INSPILOT_IMAGES_BACKEND": "sd",
                "INSPILOT_SD_INSTANCES": ",".join(server.url for server in sd),
                "INSPILOT_STORAGE_BACKEND": "memory",
            }
        )
        app = create_app(build_container(settings))
        with served(app) as url:
            yield app, url


def test_a_client_that_leaves_frees_its_slots_and_the_run_is_recorded(
    served_app: tuple[Any, str],
) -> None:
    app, url = served_app
    body = {"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 2}}
    pool = app.state.container.image_generator()
    with httpx.Client(timeout=0.8) as client, pytest.raises(httpx.ReadTimeout):
        client.post(f"{url}/generate", json=body)
    assert any(instance.busy for instance in pool.stats().instances)  # still rendering
    deadline = time.monotonic() + 2.0  # well before the 4 s renders end
    while any(instance.busy for instance in pool.stats().instances):
        assert time.monotonic() < deadline, pool.stats()
        time.sleep(0.02)
    repository = app.state.container.repository()
    deadline = time.monotonic() + 2.0
    while not (records := asyncio.run(repository.list_generations())):
        assert time.monotonic() < deadline, "the abandoned run was not recorded"
        time.sleep(0.02)
    (record,) = records
    assert record.outcome.value == "abandoned" and record.error == ABANDONED_MESSAGE
    assert record.source is not None and record.source.value == "legacy"
