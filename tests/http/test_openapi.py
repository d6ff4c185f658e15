"""The OpenAPI document is valid and tells a client author every body and reply."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient
from openapi_spec_validator import validate

from domain.generation import Pipeline

LEGACY_TYPES = {
    0: Pipeline.RAPID_DIVERGENCE,
    1: Pipeline.DEEP_DIVERGENCE,
    2: Pipeline.CONVERGE_SELECT,
    3: Pipeline.CONVERGE_EXPAND,
}


def _title(pipeline: Pipeline) -> str:
    return "".join(word.title() for word in pipeline.value.split("_"))


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def _body(doc: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    return doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


def _reply(doc: dict[str, Any], path: str, status: str, method: str = "post") -> dict[str, Any]:
    content = doc["paths"][path][method]["responses"][status]["content"]
    return content["application/json"]["schema"]


def test_the_document_is_valid_and_describes_the_legacy_bodies(client: TestClient[Any]) -> None:
    doc = client.get("/schema/openapi.json").json()
    validate(doc)

    start = _resolve(doc, _body(doc, "/paint/start"))
    assert start["properties"]["username"]
    save = _resolve(doc, _body(doc, "/paint/save"))
    assert {"username", "data"} <= set(save["properties"])
    session = _resolve(doc, _resolve(doc, _reply(doc, "/paint/start", "200"))["properties"]["data"])
    assert {"_id", "currentStage", "rapidDivergenceSchemes"} <= set(session["required"])

    bodies = [_resolve(doc, one) for one in _body(doc, "/generate")["oneOf"]]
    by_type = {body["properties"]["type"]["const"]: body for body in bodies}
    assert set(by_type) == set(LEGACY_TYPES)
    for kind, pipeline in LEGACY_TYPES.items():
        prompts = _resolve(doc, by_type[kind]["properties"]["prompts"])
        assert prompts["title"] == f"{_title(pipeline)}Prompts"
    deep = _resolve(doc, by_type[1]["properties"]["prompts"])
    assert {"designTask", "designTexts", "designImage", "schemeId"} == set(deep["properties"])

    replies = [one["$ref"].rsplit("/", 1)[-1] for one in _reply(doc, "/generate", "200")["oneOf"]]
    assert replies == [f"{_title(pipeline)}Reply" for pipeline in LEGACY_TYPES.values()]
    for name in replies:
        reply = doc["components"]["schemas"][name]
        assert set(reply["required"]) == {"success", "data", "code", "message"}
        assert reply["properties"]["data"]["$ref"].endswith(name.replace("Reply", "Data"))
    rapid = doc["components"]["schemas"]["RapidDivergenceData"]
    assert {"count", "result"} == set(rapid["required"])
    item = doc["components"]["schemas"]["ItemOut"]
    assert set(item["required"]) == {"type", "text", "image", "combinations"}

    error = _resolve(doc, _reply(doc, "/generate", "400"))
    assert error["title"] == "ErrorReply"


def test_the_document_describes_the_jobs_api(client: TestClient[Any]) -> None:
    doc = client.get("/schema/openapi.json").json()
    bodies = [_resolve(doc, one) for one in _body(doc, "/api/v1/jobs")["oneOf"]]
    by_pipeline = {body["properties"]["pipeline"]["const"]: body for body in bodies}
    assert set(by_pipeline) == {pipeline.value for pipeline in Pipeline}
    select = _resolve(doc, by_pipeline["converge_select"]["properties"]["inputs"])
    assert set(select["required"]) == {"design_task", "select_num", "schemes"}
    created = _resolve(doc, _reply(doc, "/api/v1/jobs", "202"))
    links = _resolve(doc, created["properties"]["data"])
    assert set(links["required"]) == {"id", "generationId", "status", "eventsUrl", "resultUrl"}
    image = doc["paths"]["/api/v1/jobs/{job_id}/images/{step_id}"]["get"]
    assert "image/png" in image["responses"]["200"]["content"]
