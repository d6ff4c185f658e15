"""Domain objects in the exact JSON shapes of CONTRACT.md."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.creatives import Creative, Item
from domain.experiment import Experiment, Stage
from domain.generation import GenerationRecord, ImageStep, TextStep
from domain.images import image_base64

_SCHEME_KEYS = {
    Stage.RAPID_DIVERGENCE: "rapidDivergenceSchemes",
    Stage.DEEP_DIVERGENCE: "deepDivergenceSchemes",
    Stage.CONVERGENCE: "convergenceSchemes",
}


def present_item(item: Item) -> dict[str, Any]:
    """All four keys always present; images as bare base64, the front end adds the prefix."""
    return {
        "type": item.type.value,
        "text": item.text,
        "image": image_base64(item.image) if item.image else None,
        "combinations": (
            [present_item(part) for part in item.combinations] if item.combinations else None
        ),
    }


def present_creative(creative: Creative) -> dict[str, Any]:
    return {
        "type": int(creative.type),
        "displayType": creative.display_type.value,
        "items": [present_item(item) for item in creative.items],
    }


def present_creatives(creatives: tuple[Creative, ...]) -> list[dict[str, Any]]:
    return [present_creative(creative) for creative in creatives]


def present_session(experiment: Experiment, *, with_times: bool = False) -> dict[str, Any]:
    session: dict[str, Any] = {
        "_id": experiment.id,
        "username": experiment.username,
        "currentStage": experiment.current_stage.value,
        "designTask": experiment.design_task,
    }
    for stage, key in _SCHEME_KEYS.items():
        session[key] = list(experiment.schemes_of(stage))
    if with_times:  # the legacy shape stays exactly what the front end spreads
        session["createdAt"] = _time(experiment.created_at)
        session["updatedAt"] = _time(experiment.updated_at)
    return session


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _text_step(step: TextStep) -> dict[str, Any]:
    return {
        "name": step.name,
        "attempt": step.attempt,
        "prompt": step.prompt,
        "imageCount": step.image_count,
        "rawAnswer": step.raw_answer,
        "items": list(step.items),
        "model": step.model,
        "error": step.error,
        "template": step.template,
        "templateVersion": step.template_version,
        "startedAt": _time(step.started_at),
        "finishedAt": _time(step.finished_at),
    }


def _image_step(record_id: str, step: ImageStep) -> dict[str, Any]:
    return {
        "id": step.id,
        "name": step.name,
        "prompt": step.prompt,
        "negativePrompt": step.negative_prompt,
        "seed": step.seed,
        "model": step.model,
        "instance": step.instance,
        "error": step.error,
        "template": step.template,
        "templateVersion": step.template_version,
        "startedAt": _time(step.started_at),
        "finishedAt": _time(step.finished_at),
        "imageUrl": (None if step.error else f"/api/v1/generations/{record_id}/images/{step.id}"),
    }


def present_record(record: GenerationRecord) -> dict[str, Any]:
    """A generation record for researchers; images are links, never inline megabytes."""
    return {
        "id": record.id,
        "pipeline": record.pipeline.value,
        "username": record.username,
        "requestId": record.request_id,
        "outcome": record.outcome.value,
        "error": record.error,
        "errorType": record.error_type,
        "startedAt": _time(record.started_at),
        "finishedAt": _time(record.finished_at),
        "durationS": round(record.duration_s, 3),
        "inputs": record.inputs,
        "result": record.result,
        "textSteps": [_text_step(step) for step in record.text_steps],
        "imageSteps": [_image_step(record.id, step) for step in record.image_steps],
    }
