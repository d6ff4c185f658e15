"""The export's CSV tables: their columns, types (for datapackage.json) and rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.experiment import Experiment, Stage
from domain.generation import GenerationRecord, ImageStep, TextStep
from domain.stimuli import Shown


@dataclass(frozen=True)
class Table:
    name: str
    fields: tuple[tuple[str, str], ...]  # (column, Frictionless type)
    primary_key: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"{self.name}.csv"

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.fields]


SESSIONS = Table(
    "sessions",
    (
        ("username", "string"),
        ("stage", "string"),
        ("design_task", "string"),
        ("rapid_schemes", "integer"),
        ("deep_schemes", "integer"),
        ("convergence_schemes", "integer"),
        ("created_at", "datetime"),
        ("updated_at", "datetime"),
        ("condition", "string"),
    ),
    ("username",),
)
GENERATIONS = Table(
    "generations",
    (
        ("generation_id", "string"),
        ("username", "string"),
        ("pipeline", "string"),
        ("started_at", "datetime"),
        ("duration_s", "number"),
        ("outcome", "string"),
        ("error", "string"),
        ("request_id", "string"),
        ("source", "string"),
        ("text_models", "string"),
        ("image_models", "string"),
        ("images", "integer"),
        ("task", "string"),
        ("num", "integer"),
        ("select_num", "integer"),
        ("scheme_id", "string"),
        ("design_texts", "string"),
        ("sketch_files", "string"),
        # `username` is the participant, however named; `attributed_by` says how.
        ("participant", "string"),
        ("attributed_by", "string"),
        ("attributed_at", "datetime"),
        ("condition", "string"),
        ("condition_by", "string"),
    ),
    ("generation_id",),
)
TEXT_STEPS = Table(
    "text_steps",
    (
        ("generation_id", "string"),
        ("step", "string"),
        ("attempt", "integer"),
        ("template", "string"),
        ("template_version", "string"),
        ("prompt_set_version", "string"),
        ("prompt", "string"),
        ("answer", "string"),
        ("items", "string"),
        ("model", "string"),
        ("seconds", "number"),
    ),
    (),
)
IMAGES = Table(
    "images",
    (
        ("generation_id", "string"),
        ("step_id", "string"),
        ("kind", "string"),
        ("prompt", "string"),
        ("negative_prompt", "string"),
        ("seed", "integer"),
        ("model", "string"),
        ("instance", "string"),
        ("template", "string"),
        ("template_version", "string"),
        ("prompt_set_version", "string"),
        ("seconds", "number"),
        ("file", "string"),
    ),
    ("generation_id", "step_id"),
)
STIMULI = Table(
    "stimuli",
    (
        ("generation_id", "string"),
        ("username", "string"),
        ("condition", "string"),
        ("pipeline", "string"),
        ("creative", "integer"),
        ("position", "integer"),
        ("kind", "string"),
        ("group", "string"),
        ("text", "string"),
        ("step_id", "string"),
        ("file", "string"),
        ("selected", "boolean"),
    ),
    (),
)
TABLES = (SESSIONS, GENERATIONS, TEXT_STEPS, IMAGES, STIMULI)

# Where each stage's sketches go in file names: ASCII (the stage's enum name in lower
# case), as in sessions.csv's columns.
STAGE_FILES = {
    stage: stage.name.lower()
    for stage in (Stage.RAPID_DIVERGENCE, Stage.DEEP_DIVERGENCE, Stage.CONVERGENCE)
}
_BY_GENERATION = {
    "fields": "generation_id",
    "reference": {"resource": "generations", "fields": "generation_id"},
}
_FOREIGN_KEYS: dict[str, list[dict[str, Any]]] = {
    "generations": [
        {"fields": "username", "reference": {"resource": "sessions", "fields": "username"}}
    ],
    "text_steps": [_BY_GENERATION],
    "images": [_BY_GENERATION],
    "stimuli": [
        _BY_GENERATION,
        # A step id is unique across the study; a text item has none (no key to check).
        {"fields": "step_id", "reference": {"resource": "images", "fields": "step_id"}},
    ],
}


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads as the start of a formula (OWASP's list for CSV injection)."""


def safe_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading `'` (OWASP's advice):
    a participant's `=HYPERLINK(...)` is shown, never followed. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def timestamp(value: datetime | None) -> str:
    """ISO 8601 in UTC with a Z, the form spreadsheets, pandas and R all parse."""
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(started: datetime, finished: datetime) -> str:
    return f"{(finished - started).total_seconds():.3f}"


def _distinct(values: list[str | None]) -> str:
    return ";".join(dict.fromkeys(value for value in values if value))


def session_row(experiment: Experiment) -> list[Any]:
    counts = [len(experiment.schemes_of(stage)) for stage in STAGE_FILES]
    return [
        experiment.username,
        experiment.current_stage.value,
        experiment.design_task,
        *counts,
        timestamp(experiment.created_at),
        timestamp(experiment.updated_at),
        experiment.condition or "",
    ]


def _number(value: Any) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else ""


def _inputs_columns(inputs: dict[str, Any], sketch_files: list[str]) -> list[Any]:
    """The inputs a researcher filters by, readable: task, counts, scheme id, notes, sketches."""
    schemes = inputs.get("schemes") or inputs.get("selected_schemes") or []
    texts = inputs.get("design_texts")
    if texts is None:
        texts = [
            " / ".join(map(str, scheme.get("design_texts") or []))
            for scheme in schemes
            if isinstance(scheme, dict)
        ]
    scheme_id = inputs.get("scheme_id")
    return [
        inputs.get("task") or inputs.get("design_task") or "",
        _number(inputs.get("num")),
        _number(inputs.get("select_num")),
        "" if scheme_id is None else str(scheme_id),
        "#".join(map(str, texts)),
        ";".join(sketch_files),
    ]


def bare_session_row(username: str) -> list[Any]:
    """A participant known only from their generations: no session was ever started."""
    return [username, *[""] * (len(SESSIONS.fields) - 1)]


def generation_row(record: GenerationRecord, images: int, sketch_files: list[str]) -> list[Any]:
    return [
        record.id,
        record.username or "",
        record.pipeline.value,
        timestamp(record.started_at),
        f"{record.duration_s:.3f}",
        record.outcome.value,
        record.error or "",
        record.request_id or "",
        "" if record.source is None else record.source.value,
        _distinct([step.model for step in record.text_steps]),
        _distinct([step.model for step in record.image_steps]),
        images,
        *_inputs_columns(record.inputs if isinstance(record.inputs, dict) else {}, sketch_files),
        record.participant or "",
        record.attributed_by.value if record.attributed_by else "",
        timestamp(record.attributed_at),
        record.condition,
        record.condition_by.value,
    ]


def stimulus_row(record: GenerationRecord, shown: Shown, files: dict[str, str]) -> list[Any]:
    return [
        record.id,
        record.username or "",
        record.condition,
        record.pipeline.value,
        "" if shown.creative is None else shown.creative,
        shown.position,
        shown.kind,
        shown.group or "",
        shown.text or "",
        shown.image_id or "",
        files.get(shown.image_id or "", ""),
        "" if shown.selected is None else str(shown.selected).lower(),
    ]


def text_step_row(record: GenerationRecord, step: TextStep) -> list[Any]:
    return [
        record.id,
        step.name,
        step.attempt,
        step.template or "",
        step.template_version or "",
        step.prompt_set_version or "",
        step.prompt,
        step.raw_answer or "",
        "#".join(step.items),
        step.model or "",
        _seconds(step.started_at, step.finished_at),
    ]


def image_row(record: GenerationRecord, step: ImageStep, file: str) -> list[Any]:
    return [
        record.id,
        step.id,
        step.name.rsplit("/", 1)[-1],
        step.prompt,
        step.negative_prompt,
        "" if step.seed is None else step.seed,
        step.model or "",
        step.instance or "",
        step.template or "",
        step.template_version or "",
        step.prompt_set_version or "",
        _seconds(step.started_at, step.finished_at),
        file,
    ]


def datapackage(created: datetime) -> dict[str, Any]:
    """A Frictionless Tabular Data Package: tools load the tables without our code."""
    resources = []
    for table in TABLES:
        schema: dict[str, Any] = {
            "fields": [
                {"name": name, "type": kind, **({"format": "any"} if kind == "datetime" else {})}
                for name, kind in table.fields
            ],
            "missingValues": [""],
        }
        if table.primary_key:
            schema["primaryKey"] = list(table.primary_key)
        if table.name in _FOREIGN_KEYS:
            schema["foreignKeys"] = _FOREIGN_KEYS[table.name]
        resources.append(
            {
                "name": table.name,
                "path": table.path,
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": schema,
            }
        )
    return {
        "profile": "tabular-data-package",
        "name": "inspilot-study",
        "title": "InsPilot study export",
        "created": timestamp(created),
        "resources": resources,
    }
