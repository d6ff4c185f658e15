"""What the dashboard shows, as plain dicts for the templates and the "now" panel's JSON."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from application.monitoring import RunMonitor
from application.ports import ParticipantSummary
from domain.experiment import SCHEME_STAGES, Experiment, Scheme
from domain.generation import GenerationRecord
from entrypoints.http.dashboard_study import waterfall
from entrypoints.http.presenters import image_url
from entrypoints.observability.sources import MonitoredAdapters
from entrypoints.settings import Settings

# Only pictures the browser renders inertly are put in <img src>; anything else is omitted.
_IMAGE_DATA_PREFIXES = ("data:image/png;", "data:image/jpeg;", "data:image/webp;")


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "–"


def seconds(started: datetime, finished: datetime) -> str:
    return f"{(finished - started).total_seconds():.2f}"


def participant_rows(summaries: Sequence[ParticipantSummary]) -> list[dict[str, Any]]:
    """Most recently active first: during a session that is who the researcher watches."""
    ordered = sorted(
        summaries,
        key=lambda s: s.last_activity or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    return [
        {
            "username": s.username,
            "stage": s.current_stage.value,
            "task": s.design_task,
            "last_activity": when(s.last_activity),
            "generations": s.generations,
            "failures": s.failures,
            "condition": s.condition or "",
        }
        for s in ordered
    ]


def condition_counts(summaries: Sequence[ParticipantSummary]) -> list[tuple[str, int]]:
    """Participants per condition, for the researcher checking the study's balance."""
    counts: dict[str, int] = {}
    for summary in summaries:
        name = summary.condition or "(none yet)"
        counts[name] = counts.get(name, 0) + 1
    return sorted(counts.items())


def _sketch(scheme: Scheme, number: int) -> dict[str, Any]:
    image = scheme.get("canvasImage")
    svg = scheme.get("canvasSvg")
    source = None
    if isinstance(image, str) and image.startswith(_IMAGE_DATA_PREFIXES):
        source = image
    elif isinstance(svg, str) and svg.strip():
        # An SVG inside <img> is inert: no scripts, no external loads.
        source = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    texts = scheme.get("texts")
    notes = [
        str(item.get("text", ""))
        for item in (texts if isinstance(texts, list) else [])
        if isinstance(item, dict)
    ]
    return {
        "number": number,
        "name": str(scheme.get("name", "")),
        "image": source,
        "notes": [note for note in notes if note.strip()],
    }


def sketches_by_stage(experiment: Experiment) -> list[dict[str, Any]]:
    return [
        {
            "stage": stage.value,
            "sketches": [
                _sketch(scheme, n) for n, scheme in enumerate(experiment.schemes_of(stage), 1)
            ],
        }
        for stage in SCHEME_STAGES
    ]


_SKETCH_KEYS = ("design_image", "designImage")


def readable_inputs(inputs: Any, field: str = "") -> list[dict[str, Any]]:
    """A record's inputs as one row per field, text as written (Chinese stays Chinese),
    sketches as pictures instead of a data URI thousands of characters wide."""
    if isinstance(inputs, dict):
        return [
            row
            for key, value in inputs.items()
            for row in (
                [_sketch_row(f"{field}{key}", value)]
                if key in _SKETCH_KEYS
                else readable_inputs(value, f"{field}{key}.")
            )
        ]
    name = field.rstrip(".")
    if isinstance(inputs, list) and any(isinstance(item, dict) for item in inputs):
        return [
            row
            for index, item in enumerate(inputs)
            for row in readable_inputs(item, f"{name}[{index}].")
        ]
    if isinstance(inputs, list):
        return [{"field": name, "texts": [str(item) for item in inputs]}]
    return [{"field": name, "texts": ["–" if inputs is None else str(inputs)]}]


def _sketch_row(field: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str) and value.startswith(_IMAGE_DATA_PREFIXES):
        return {"field": field, "sketch": value}
    return {"field": field, "texts": ["–" if value is None else "(a sketch the page cannot show)"]}


def stimuli_view(record: GenerationRecord) -> list[dict[str, Any]]:
    """What the participant saw, creative by creative, each item in its place."""
    creatives: dict[int | None, list[dict[str, Any]]] = {}
    for shown in record.stimuli:
        creatives.setdefault(shown.creative, []).append(
            {
                "position": shown.position,
                "kind": shown.kind,
                "text": shown.text,
                "url": image_url(record.id, shown.image_id) if shown.image_id else None,
                "selected": shown.selected,
            }
        )
    return [{"creative": number, "items": items} for number, items in creatives.items()]


def generation_view(record: GenerationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "pipeline": record.pipeline.value,
        "username": record.username,
        "attributed_by": record.attributed_by.value if record.attributed_by else None,
        "attributed_late": record.attributed_at is not None,
        "condition": record.condition,
        "condition_by": record.condition_by.value,
        "request_id": record.request_id,
        "source": None if record.source is None else record.source.value,
        "outcome": record.outcome.value,
        "error": record.error,
        "started": when(record.started_at),
        "duration": f"{record.duration_s:.2f}",
        "inputs": readable_inputs(record.inputs),
        "stimuli": stimuli_view(record),
        "waterfall": waterfall(record),
        "text_steps": [
            {
                "name": step.name,
                "attempt": step.attempt,
                "template": step.template,
                "version": step.template_version,
                "set_version": step.prompt_set_version,
                "model": step.model,
                "endpoint": step.endpoint,
                "image_sizes": list(step.image_sizes),
                "seconds": seconds(step.started_at, step.finished_at),
                "prompt": step.prompt,
                "answer": step.raw_answer,
                "parsed": list(step.items),
                "error": step.error,
            }
            for step in record.text_steps
        ],
        "image_steps": [
            {
                "url": None if step.error else f"/api/v1/generations/{record.id}/images/{step.id}",
                "name": step.name,
                "prompt": step.prompt,
                "negative": step.negative_prompt,
                "seed": step.seed,
                "instance": step.instance,
                "template": step.template,
                "version": step.template_version,
                "set_version": step.prompt_set_version,
                "seconds": seconds(step.started_at, step.finished_at),
                "error": step.error,
            }
            for step in record.image_steps
        ],
    }


def prompt_set_views(catalogs: Sequence[Any]) -> list[dict[str, Any]]:
    """Each prompt set serving, its version, and the last edit it refused (if any)."""
    return [
        {
            "directory": str(getattr(catalog, "directory", "")),
            "version": getattr(catalog, "set_version", None),
            "refused": getattr(catalog, "refused", None),
        }
        for catalog in catalogs
    ]


def now_panel(
    monitor: RunMonitor, settings: Settings, adapters: MonitoredAdapters, disk: dict[str, Any]
) -> dict[str, Any]:
    """Runs in flight, the SD pool, the text model's recent errors, the record queue, and
    the data disk's free space (`FreeSpace.figures()`: `low` when saves are refused)."""
    now = datetime.now(UTC)
    stats = adapters.pool_stats()
    writer = adapters.record_queue()
    return {
        "at": now.isoformat(timespec="seconds"),
        "in_flight": [
            {
                "id": run.id,
                "pipeline": run.pipeline.value,
                "username": run.username,
                "request_id": run.request_id,
                "elapsed_s": round((now - run.started_at).total_seconds(), 1),
            }
            for run in monitor.in_flight()
        ],
        "sd": {
            "backend": settings.images_backend,
            "queue": stats.queue_length if stats else 0,
            "instances": [
                {
                    "instance": item.instance,
                    "healthy": item.healthy,
                    "busy": item.busy,
                    "slots": item.slots,
                    "render_s": item.render_s,
                    "jobs": item.jobs,
                    "failures": item.failures,
                    "last_error": item.last_error,
                }
                for item in (stats.instances if stats else ())
            ],
        },
        "text": {
            "backend": settings.text_backend,
            "recent_errors": [
                {
                    "at": when(error.at),
                    "step": error.step,
                    "error": error.error,
                    "model": error.model,
                    "generation_id": error.generation_id,
                }
                for error in monitor.recent_text_errors()
            ],
            "endpoints": adapters.endpoint_stats(),
        },
        "records": ({"queue": writer.depth(), "failures": writer.failures()} if writer else None),
        "disk": disk,
    }
