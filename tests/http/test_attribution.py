"""Every generation of the real front end's session belongs to its participant: by the
signed cookie (same origin), else by the sketches and notes only that participant saved."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from litestar.testing import TestClient

from adapters.demo_images import render_png
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.http.participant_cookie import COOKIE_NAME
from tests.http.conftest import memory_settings

TASK = "为独居老人设计一款厨房用品"  # both participants work on the same task


def sketch(seed: int) -> str:
    return "data:image/png;base64," + base64.b64encode(render_png(40, 30, seed)).decode()


def _ok(response: Any) -> Any:
    body = response.json()
    assert response.status_code == 200, body
    return body["data"]


def _scheme(name: str, image: str, notes: list[str]) -> dict[str, Any]:
    texts = [{"text": note, "position": {"x": 1, "y": 2}} for note in notes]
    return {"name": name, "canvasImage": image, "paths": [], "texts": texts}


class Participant:
    """One participant's front end: the requests it sends, in the order it sends them."""

    def __init__(self, client: TestClient[Any], username: str, seed: int, *, same_origin: bool):
        self.client = client
        self.username = username
        self.same_origin = same_origin
        self.schemes = [
            _scheme("一", sketch(seed), [f"{username} 折叠"]),
            _scheme("二", sketch(seed + 1), [f"{username} 保温", "易清洗"]),
        ]
        self.cookies: dict[str, str] = {}

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        # Cross-origin, the browser sends no cookie of the API's origin.
        self.client.cookies.clear()
        if self.same_origin:
            self.client.cookies.update(self.cookies)
        response = self.client.post(path, json=body)
        if COOKIE_NAME in response.cookies:
            self.cookies = {COOKIE_NAME: response.cookies[COOKIE_NAME]}
        return _ok(response)

    def start(self) -> None:
        self._post("/paint/start", {"username": self.username})

    def save(self, schemes: list[dict[str, Any]] | None = None) -> None:
        stages = {"准备": None, "快速发散": schemes or self.schemes, "深入发散": [], "收敛": []}
        data = {"designSchemes": stages, "designTask": TASK, "currentStage": "快速发散"}
        self._post("/paint/save", {"username": self.username, "data": data})

    def generate(self, kind: int, prompts: dict[str, Any]) -> None:
        self._post("/generate", {"appid": 0, "type": kind, "prompts": prompts})

    def rapid(self) -> None:
        self.generate(0, {"task": TASK, "num": 2})

    def deep(self, scheme: dict[str, Any], index: int) -> None:
        notes = [text["text"] for text in scheme["texts"]]
        prompts = {"designTask": TASK, "designTexts": notes, "designImage": scheme["canvasImage"]}
        self.generate(1, {**prompts, "schemeId": index})

    def name_and_select(self) -> None:
        schemes = [
            {"designTexts": [t["text"] for t in s["texts"]], "designImage": s["canvasImage"]}
            for s in self.schemes
        ]
        self.generate(2, {"designTask": TASK, "selectNum": 1, "schemes": schemes})

    def expand(self) -> None:
        selected = [{"designTexts": [t["text"] for t in self.schemes[1]["texts"]]}]
        self.generate(3, {"selectedSchemes": selected, "num": 1})

    def whole_session(self) -> None:
        self.start()
        self.rapid()
        self.save()
        for index, scheme in enumerate(self.schemes):
            self.deep(scheme, index)
        self.name_and_select()
        self.expand()


def _records(container: Container) -> list[Any]:
    return sorted(
        asyncio.run(container.repository().list_generations(limit=500)),
        key=lambda record: record.started_at,
    )


@pytest.fixture
def app_client() -> Any:
    container = build_container(memory_settings())
    with TestClient(create_app(container)) as client:
        yield client, container


def test_cross_origin_sessions_are_attributed_by_their_sketches_and_notes(app_client: Any) -> None:
    client, container = app_client
    for name, seed in (("p1", 10), ("p2", 20)):
        Participant(client, name, seed, same_origin=False).whole_session()
    records = _records(container)
    assert len(records) == 10
    for record in records:
        if record.pipeline.value == "rapid_divergence":
            # Nothing in a type 0 belongs to one participant only: never a guess.
            assert (record.participant, record.attributed_by) == (None, None)
        else:
            assert record.attributed_by == "sketch", record
    owners = [r.participant for r in records if r.pipeline.value != "rapid_divergence"]
    assert owners == ["p1"] * 4 + ["p2"] * 4


def test_same_origin_sessions_are_attributed_by_the_signed_cookie(app_client: Any) -> None:
    client, container = app_client
    for name, seed in (("p1", 10), ("p2", 20)):
        Participant(client, name, seed, same_origin=True).whole_session()
    records = _records(container)
    assert [(r.participant, r.attributed_by) for r in records] == [("p1", "cookie")] * 5 + [
        ("p2", "cookie")
    ] * 5


def test_the_cookie_is_signed_http_only_and_lax(app_client: Any) -> None:
    client, container = app_client
    response = client.post("/paint/start", json={"username": "p9"})
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in header
    assert "SameSite=lax" in header or "SameSite=Lax" in header
    assert "Path=/" in header and "Secure" not in header  # plain HTTP here
    forged = response.cookies[COOKIE_NAME].replace("cDk", "cDg")  # base64 of p9 -> p8
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, forged)
    _ok(client.post("/generate", json={"appid": 0, "type": 0, "prompts": {"task": "t", "num": 1}}))
    (record,) = _records(container)
    assert record.participant is None


def test_a_sketch_asked_for_before_its_save_is_attributed_when_the_save_arrives(
    app_client: Any,
) -> None:
    client, container = app_client
    p1 = Participant(client, "p1", 10, same_origin=False)
    p1.start()
    p1.deep(p1.schemes[0], 0)  # the front end asks before the save that holds the sketch
    (record,) = _records(container)
    assert record.participant is None and record.attributed_at is None
    p1.save()
    (record,) = _records(container)
    assert (record.participant, record.attributed_by) == ("p1", "sketch")
    assert record.attributed_at is not None and record.attributed_at >= record.finished_at


def test_a_sketch_saved_by_two_participants_names_nobody(app_client: Any) -> None:
    client, container = app_client
    p1 = Participant(client, "p1", 10, same_origin=False)
    p2 = Participant(client, "p2", 20, same_origin=False)
    for participant in (p1, p2):
        participant.start()
    shared = p1.schemes[0]
    p1.save()
    p2.save([shared, *p2.schemes])
    p2.deep(shared, 0)
    (record,) = _records(container)
    assert (record.participant, record.attributed_by) == (None, None)


def test_a_named_username_wins_and_is_said_so(app_client: Any) -> None:
    client, container = app_client
    p1 = Participant(client, "p1", 10, same_origin=True)
    p1.start()
    named = {"appid": 0, "type": 0, "username": "p1", "prompts": {"task": "t", "num": 1}}
    p1._post("/generate", named)
    (record,) = _records(container)
    assert (record.participant, record.attributed_by) == ("p1", "username")


@pytest.mark.slow  # a generation of seconds (0.3 s per text step) with a save midway
def test_a_save_arriving_while_the_generation_runs_names_it_afterwards() -> None:
    import threading
    import time

    import httpx

    from tests.fakes.uvicorn_thread import served

    container = build_container(memory_settings(INSPILOT_DEMO_TEXT_LATENCY_S="0.3"))
    image = sketch(31)
    schemes = [_scheme("一", image, ["慢"])]
    data = {"designSchemes": {"快速发散": schemes}, "designTask": TASK, "currentStage": "深入发散"}
    prompts = {"designTask": TASK, "designTexts": ["慢"], "designImage": image, "schemeId": 0}
    with served(create_app(container)) as url:
        assert httpx.post(f"{url}/paint/start", json={"username": "p5"}).status_code == 200
        replies: list[int] = []
        running = threading.Thread(
            target=lambda: replies.append(
                httpx.post(
                    f"{url}/generate",
                    json={"appid": 0, "type": 1, "prompts": prompts},
                    timeout=30,
                ).status_code
            )
        )
        running.start()
        time.sleep(0.4)  # the run is past its first text step; no record exists yet
        assert _records(container) == []
        saved = httpx.post(f"{url}/paint/save", json={"username": "p5", "data": data})
        assert saved.status_code == 200
        running.join(30)
        assert replies == [200]
        deadline = time.monotonic() + 5
        while not (records := _records(container)) or records[0].participant is None:
            assert time.monotonic() < deadline, "the run was not attributed after the save"
            time.sleep(0.05)
    (record,) = records
    assert (record.participant, record.attributed_by) == ("p5", "sketch")
    assert record.attributed_at is not None
