"""Bad input, unknown users and model failures: the envelope, an honest status, nothing changed."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import TestClient

from adapters.filesystem_prompts import TemplateError
from domain.errors import (
    ContentRejected,
    InsPilotError,
    ModelAnswerInvalid,
    ModelTimeout,
    ModelUnavailable,
)
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.settings import REPO_ROOT
from tests.http.conftest import SKETCH, memory_settings
from tests.unit.fakes import FakeImageGenerator, RecordingTextGenerator

GIF = "data:image/gif;base64," + base64.b64encode(b"GIF89a" + bytes(20)).decode()


def _refused(response: Any, status: int, message: str) -> None:
    body = response.json()
    assert response.status_code == status, body
    assert body["success"] is False and body["data"] is None and body["code"] == 1
    assert message in body["message"], body["message"]


def _generate(kind: Any, prompts: Any, appid: Any = 0) -> dict[str, Any]:
    return {"appid": appid, "type": kind, "prompts": prompts}


BAD_REQUESTS = [
    (
        "/generate",
        _generate(0, {"task": "长" * 2001, "num": 1}),
        "prompts.task: must be at most 2000 characters",
    ),
    (
        "/generate",
        _generate(1, {"designTask": "t", "designTexts": ["a", "b" * 2001], "schemeId": 0}),
        "prompts.designTexts[1]: must be at most 2000 characters",
    ),
    (
        "/generate",
        _generate(3, {"selectedSchemes": [{"designTexts": ["a"] * 101}], "num": 1}),
        "prompts.selectedSchemes[0].designTexts: must list at most 100 texts",
    ),
    ("/paint/start", {"username": {"$ne": None}}, "username: must be a string"),
    ("/paint/start", {"username": ["a"]}, "username: must be a string"),
    ("/paint/start", {"username": ""}, "username: must not be empty"),
    ("/paint/start", {"username": "x" * 65}, "username: must be at most 64"),
    ("/paint/start", {"username": "$gt"}, "username: must not start with '$'"),
    ("/paint/start", {}, "username: must be a string"),
    ("/paint/start", [1, 2], "body: must be a JSON object"),
    ("/paint/save", {"username": {"$gt": ""}, "data": {}}, "username: must be a string"),
    ("/paint/save", {"username": "u"}, "data: is required"),
    (
        "/paint/save",
        {"username": "u", "data": {"designSchemes": {"快速发散": "x"}}},
        "data.designSchemes",
    ),
    (
        "/paint/save",
        {"username": "u", "data": {"designSchemes": {"快速发散": [1]}}},
        "expected object",
    ),
    (
        "/paint/save",
        {"username": "u", "data": {"currentStage": "deep"}},
        "data.currentStage: must be one of",
    ),
    ("/generate", _generate(0, {"task": "", "num": 6}), "prompts.task: must not be empty"),
    ("/generate", _generate(0, {"task": "t", "num": 0}), "prompts.num: must be between 1 and 12"),
    ("/generate", _generate(0, {"task": "t", "num": 13}), "prompts.num: must be between 1 and 12"),
    ("/generate", _generate(0, {"task": "t", "num": "six"}), "prompts.num: expected int"),
    ("/generate", _generate(0, {"task": "t", "num": [6]}), "prompts.num: expected int"),
    ("/generate", _generate(0, {"num": 6}), "prompts.task: is required"),
    ("/generate", _generate(0, {"task": "t", "num": 6}, appid=1), "appid: unknown application 1"),
    ("/generate", _generate(7, {"task": "t", "num": 6}), "type: unknown type 7"),
    ("/generate", _generate("x", {}), "type: expected int"),
    ("/generate", {"appid": 0, "type": 0}, "prompts: is required"),
    (
        "/generate",
        _generate(1, {"designTask": "t", "designTexts": [], "schemeId": 0}),
        "prompts.designTexts: a scheme needs texts or a designImage",
    ),
    (
        "/generate",
        _generate(1, {"designTask": "t", "designTexts": ["a"], "schemeId": 0, "designImage": GIF}),
        "prompts.designImage: must be a PNG",
    ),
    (
        "/generate",
        _generate(
            1,
            {
                "designTask": "t",
                "designTexts": ["a"],
                "schemeId": 0,
                "designImage": "data:image/png;base64,%%%",
            },
        ),
        "prompts.designImage: must be a PNG or JPEG data URI or base64",
    ),
    (
        "/generate",
        _generate(1, {"designTask": "t", "designTexts": "a", "schemeId": 0}),
        "prompts.designTexts: expected array",
    ),
    (
        "/generate",
        _generate(2, {"designTask": "t", "selectNum": 0, "schemes": [{}]}),
        "prompts.selectNum: must be at least 1",
    ),
    (
        "/generate",
        _generate(2, {"designTask": "t", "selectNum": 1, "schemes": []}),
        "prompts.schemes: must list at least one scheme",
    ),
    (
        "/generate",
        _generate(2, {"designTask": "t", "selectNum": 1, "schemes": [{"designImage": GIF}]}),
        "prompts.schemes[0].designImage: must be a PNG",
    ),
    (
        "/generate",
        _generate(3, {"selectedSchemes": [], "num": 1}),
        "prompts.selectedSchemes: must list at least one scheme",
    ),
    (
        "/generate",
        _generate(3, {"selectedSchemes": [{"designTexts": ["a"]}], "num": 99}),
        "prompts.num: must be between 1 and 12",
    ),
]


@pytest.fixture(scope="module")
def refusing() -> Iterator[tuple[TestClient[Any], Container]]:
    """One app for every bad request below: each is refused and changes nothing, so the
    store must still be empty after each one (a case that wrote would fail there and on).
    Building an app per case cost about 0.1 s of CPU each."""
    container = build_container(memory_settings())
    with TestClient(create_app(container)) as test_client:
        yield test_client, container


@pytest.mark.parametrize(("path", "body", "message"), BAD_REQUESTS)
async def test_bad_input_is_refused_and_changes_nothing(
    refusing: tuple[TestClient[Any], Container], path: str, body: Any, message: str
) -> None:
    client, container = refusing
    _refused(client.post(path, json=body), 400, message)
    repository = container.repository()
    assert await repository.list_generations() == []
    assert await repository.get("u") is None


def test_malformed_json_is_refused(client: TestClient[Any]) -> None:
    response = client.post(
        "/paint/start", content=b"{username:", headers={"Content-Type": "application/json"}
    )
    _refused(response, 400, "body: must be valid JSON")


def test_saving_an_unknown_user_is_404(client: TestClient[Any], container: Container) -> None:
    response = client.post(
        "/paint/save",
        json={
            "username": "ghost",
            "data": {
                "designSchemes": {"快速发散": []},
                "designTask": "t",
                "currentStage": "快速发散",
            },
        },
    )
    _refused(response, 404, "username: no session for 'ghost'")


def test_unknown_routes_and_methods_get_the_envelope(client: TestClient[Any]) -> None:
    _refused(client.get("/nowhere"), 404, "no route GET /nowhere")
    _refused(client.get("/generate"), 405, "method GET not allowed")


def test_oversized_body_is_refused_with_413() -> None:
    container = build_container(memory_settings(INSPILOT_MAX_BODY_MB="1"))
    with TestClient(create_app(container)) as client:
        big = {"username": "u", "data": {"designSchemes": {"快速发散": [{"x": "a" * 1_200_000}]}}}
        _refused(client.post("/paint/save", json=big), 413, "INSPILOT_MAX_BODY_MB")


def test_oversized_sketch_is_refused() -> None:
    container = build_container(memory_settings(INSPILOT_MAX_IMAGE_MB="1"))
    big = (
        "data:image/png;base64,"
        + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(1_100_000)).decode()
    )
    with TestClient(create_app(container)) as client:
        response = client.post(
            "/generate",
            json=_generate(
                1, {"designTask": "t", "designTexts": [], "designImage": big, "schemeId": 1}
            ),
        )
        _refused(response, 400, "prompts.designImage: image must be at most 1 MB")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ModelUnavailable("image model: all 6 instances are down", retry_after_s=7.2), 503),
        (ModelTimeout("image model: no answer within 180 s"), 504),
        (ModelAnswerInvalid("image model: instance returned no image"), 502),
        (ContentRejected("image model: prompt refused by the content filter"), 422),
    ],
)
async def test_model_failures_are_reported_not_papered_over(
    container: Container, error: Exception, status: int
) -> None:
    container.image_generator.override(providers.Object(FakeImageGenerator(fail_with=error)))
    with TestClient(create_app(container)) as client:
        response = client.post("/generate", json=_generate(0, {"task": "t", "num": 3}))
        (record,) = await container.repository().list_generations()
    body = response.json()
    assert response.status_code == status
    assert body == {"success": False, "data": None, "code": 2, "message": str(error)}
    if isinstance(error, ModelUnavailable):
        assert response.headers["retry-after"] == "8"
    assert record.outcome.value == "failed" and record.error == str(error)


def test_failing_text_model_on_deep_divergence(container: Container) -> None:
    text = RecordingTextGenerator(failures={"functions": ModelTimeout("text model: timed out")})
    container.text_generator.override(providers.Object(text))
    with TestClient(create_app(container)) as client:
        response = client.post(
            "/generate",
            json=_generate(
                1, {"designTask": "t", "designTexts": ["x"], "designImage": SKETCH, "schemeId": 2}
            ),
        )
    assert response.status_code == 504 and response.json()["code"] == 2


def test_app_refuses_to_start_on_a_broken_template(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", prompts)
    broken = prompts / "paint/converge_expand/places.txt"
    broken.write_text("给 $schem 写 $num 个地点，用 # 隔开", encoding="utf-8")
    settings = memory_settings(INSPILOT_PROMPTS_DIR=str(prompts))
    with pytest.raises(TemplateError, match=r"places\.txt: unknown placeholder \$schem"):
        create_app(build_container(settings))


class _UnmappedError(InsPilotError):
    """An error kind the HTTP layer's table does not know (a new one, forgotten there)."""


def test_an_error_the_table_does_not_name_is_ours_not_the_clients(container: Container) -> None:
    failure = _UnmappedError("image model: something nobody mapped")
    container.image_generator.override(providers.Object(FakeImageGenerator(fail_with=failure)))
    with TestClient(create_app(container)) as client:
        response = client.post("/generate", json=_generate(0, {"task": "t", "num": 1}))
    assert response.status_code == 500
    assert response.json() == {
        "success": False,
        "data": None,
        "code": 3,
        "message": "image model: something nobody mapped",
    }
