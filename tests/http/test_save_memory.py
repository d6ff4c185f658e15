"""Large saves take turns: a session costs several times its body while it is decoded and
stored, so at most INSPILOT_MAX_SAVING_MB of them are (20 concurrent 60 MB saves drove
the service to 1.8 GB with only the in-flight limit)."""

from __future__ import annotations

import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dependency_injector import providers
from litestar.testing import TestClient

from adapters.memory_repository import InMemoryExperimentRepository
from domain.experiment import Experiment
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from tests.fakes.sdapi_server import real_size_png
from tests.http.conftest import memory_settings


class CountingSaves(InMemoryExperimentRepository):
    """Notes how many saves are inside the store at once; each takes a moment."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0
        self.most_inside = 0

    async def save(self, experiment: Experiment) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await asyncio.sleep(0.3)
            await super().save(experiment)
        finally:
            self.inside -= 1


def _body(username: str) -> dict[str, Any]:
    sketch = base64.b64encode(real_size_png(400, 400, username)).decode()  # ~640 KB
    scheme = {"name": "a", "canvasImage": f"data:image/png;base64,{sketch}", "paths": []}
    return {
        "username": username,
        "data": {
            "designSchemes": {"快速发散": [scheme], "准备": None},
            "designTask": "t",
            "currentStage": "快速发散",
        },
    }


def test_saves_past_the_saving_limit_wait_their_turn_and_all_succeed() -> None:
    store = CountingSaves()
    container = build_container(memory_settings(INSPILOT_MAX_SAVING_MB="1"))
    container.store.override(providers.Object(store))
    users = ["ana", "bo", "cy"]
    with TestClient(create_app(container)) as client:
        for user in users:
            assert client.post("/paint/start", json={"username": user}).status_code == 200
        with ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(lambda u: client.post("/paint/save", json=_body(u)), users))
        assert [reply.status_code for reply in replies] == [200, 200, 200]
        for user in users:
            session = client.post("/paint/start", json={"username": user}).json()["data"]
            sent = _body(user)["data"]["designSchemes"]["快速发散"]
            assert session["rapidDivergenceSchemes"] == sent
    assert store.most_inside == 1, f"{store.most_inside} saves were decoded and stored at once"
