"""Sessions and generation records in the exact JSON shapes of CONTRACT.md and the README."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import msgspec

from domain.creatives import Item
from domain.experiment import Experiment, Stage
from domain.generation import GenerationRecord, ImageStep, TextStep
from domain.images import image_base64
from domain.stimuli import Shown
from entrypoints.http.splice import TrustedJsonText
from entrypoints.wire import camel

_SCHEME_KEYS = {
    Stage.RAPID_DIVERGENCE: "rapidDivergenceSchemes",
    Stage.DEEP_DIVERGENCE: "deepDivergenceSchemes",
    Stage.CONVERGENCE: "convergenceSchemes",
}


def legacy_image(item: Item) -> str:
    """A picture in the legacy reply: bare base64 (the front end adds the prefix), the text
    SD sent when there is one, so a 1.7 MB picture is not encoded again (nor scanned: the
    reply's encoder splices it in, see splice.py)."""
    return cast(str, TrustedJsonText(image_base64(item.image or b"")))


class SessionOut(msgspec.Struct):
    """The participant's session exactly as the front end spreads it into its state."""

    id: str = msgspec.field(name="_id")
    username: str
    currentStage: str
    designTask: str
    rapidDivergenceSchemes: list[dict[str, Any]]
    deepDivergenceSchemes: list[dict[str, Any]]
    convergenceSchemes: list[dict[str, Any]]


class StoredSessionOut(SessionOut):
    """The session for researchers, with when it was created and last saved."""

    createdAt: str | None = None
    updatedAt: str | None = None
    condition: str | None = None
    conditionMoves: list[dict[str, Any]] = []


def present_session(experiment: Experiment, *, with_times: bool = False) -> SessionOut:
    fields: dict[str, Any] = {
        "id": experiment.id,
        "username": experiment.username,
        "currentStage": experiment.current_stage.value,
        "designTask": experiment.design_task,
    }
    for stage, key in _SCHEME_KEYS.items():
        fields[key] = list(experiment.schemes_of(stage))
    if not with_times:  # the legacy shape stays exactly what the front end spreads
        return SessionOut(**fields)
    return StoredSessionOut(
        **fields,
        createdAt=_time(experiment.created_at),
        updatedAt=_time(experiment.updated_at),
        condition=experiment.condition,
        conditionMoves=[
            {"from": move.from_condition, "to": move.to_condition, "at": _time(move.at)}
            for move in experiment.condition_moves
        ],
    )


def _camel_keys(value: Any) -> Any:
    """Records keep the application's snake_case names; this API speaks camelCase."""
    if isinstance(value, dict):
        return {camel(key): _camel_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_camel_keys(item) for item in value]
    return value


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
        "endpoint": step.endpoint,
        "imageSizes": list(step.image_sizes),
        "error": step.error,
        "template": step.template,
        "templateVersion": step.template_version,
        "promptSetVersion": step.prompt_set_version,
        "expectedCount": step.expected_count,
        "choices": list(step.choices),
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
        "promptSetVersion": step.prompt_set_version,
        "options": step.options,
        "startedAt": _time(step.started_at),
        "finishedAt": _time(step.finished_at),
        "imageUrl": None if step.error else image_url(record_id, step.id),
    }


def image_url(record_id: str, step_id: str) -> str:
    return f"/api/v1/generations/{record_id}/images/{step_id}"


def _shown(record_id: str, shown: Shown) -> dict[str, Any]:
    return {
        "creative": shown.creative,
        "position": shown.position,
        "kind": shown.kind,
        "group": shown.group,
        "text": shown.text,
        "imageUrl": image_url(record_id, shown.image_id) if shown.image_id else None,
        "selected": shown.selected,
    }


def present_record(record: GenerationRecord) -> dict[str, Any]:
    """A generation record for researchers; images are links, never inline megabytes."""
    return {
        "id": record.id,
        "pipeline": record.pipeline.value,
        "username": record.username,
        "participant": record.participant,
        "attributedBy": None if record.attributed_by is None else record.attributed_by.value,
        "attributedAt": _time(record.attributed_at) if record.attributed_at else None,
        "condition": record.condition,
        "conditionBy": record.condition_by.value,
        "requestId": record.request_id,
        "source": None if record.source is None else record.source.value,
        "outcome": record.outcome.value,
        "error": record.error,
        "errorType": record.error_type,
        "startedAt": _time(record.started_at),
        "finishedAt": _time(record.finished_at),
        "durationS": round(record.duration_s, 3),
        "inputs": _camel_keys(record.inputs),
        "result": _camel_keys(record.result),
        "textSteps": [_text_step(step) for step in record.text_steps],
        "imageSteps": [_image_step(record.id, step) for step in record.image_steps],
        "stimuli": [_shown(record.id, shown) for shown in record.stimuli],
    }
