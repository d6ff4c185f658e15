"""The dashboard's study views: the generations list filtered and paged, a summary per
pipeline, and a generation's step waterfall. Pure functions over records."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from domain.errors import InvalidInput
from domain.experiment import Stage
from domain.generation import GenerationRecord, Outcome, Pipeline
from domain.timeline import SaveMark, stage_durations

PAGE_SIZE = 50
FILTER_FIELDS = (
    "participant",
    "condition",
    "pipeline",
    "outcome",
    "since",
    "until",
    "template_version",
)


def _time(value: str, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(field, "must be an ISO 8601 time (2025-03-01T09:30)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class GenerationFilter:
    """What the researcher asked to see; every field optional, all kept in the URL."""

    participant: str = ""
    condition: str = ""
    pipeline: str = ""
    outcome: str = ""
    since: str = ""
    until: str = ""
    template_version: str = ""

    @classmethod
    def of(cls, query: Mapping[str, str]) -> GenerationFilter:
        values = {name: str(query.get(name, "") or "").strip() for name in FILTER_FIELDS}
        chosen = cls(**values)
        if chosen.pipeline and chosen.pipeline not in {p.value for p in Pipeline}:
            raise InvalidInput("pipeline", f"must be one of {', '.join(p.value for p in Pipeline)}")
        if chosen.outcome and chosen.outcome not in {o.value for o in Outcome}:
            raise InvalidInput("outcome", f"must be one of {', '.join(o.value for o in Outcome)}")
        _time(chosen.since, "since")
        _time(chosen.until, "until")
        return chosen

    @property
    def since_at(self) -> datetime | None:
        return _time(self.since, "since")

    @property
    def until_at(self) -> datetime | None:
        return _time(self.until, "until")

    def admits(self, record: GenerationRecord) -> bool:
        versions = {step.template_version for step in record.text_steps} | {
            step.template_version for step in record.image_steps
        }
        return (
            (not self.participant or record.username == self.participant)
            and (not self.condition or record.condition == self.condition)
            and (not self.pipeline or record.pipeline.value == self.pipeline)
            and (not self.outcome or record.outcome.value == self.outcome)
            and (not self.template_version or self.template_version in versions)
        )

    def query(self, **changes: str | int) -> str:
        """This filter as a query string, with `changes` (a page number) applied."""
        values: dict[str, str | int] = {
            name: getattr(self, name) for name in FILTER_FIELDS if getattr(self, name)
        }
        values.update(changes)
        return urlencode(values)


@dataclass(frozen=True)
class PipelineSummary:
    pipeline: str
    count: int
    succeeded: int
    p50_s: float | None
    p95_s: float | None

    @property
    def success_rate(self) -> str:
        return f"{100 * self.succeeded / self.count:.0f} %" if self.count else "–"


def _percentile(ordered: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile: a duration some run really took."""
    if not ordered:
        return None
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


Digest = tuple[str, str, Outcome, float]
"""What the summary needs of a record: id, pipeline, outcome, duration in seconds."""


def summarize_digests(digests: Iterable[Digest]) -> list[PipelineSummary]:
    """Per pipeline: how many, how many succeeded, the median and 95th percentile duration."""
    durations: dict[str, list[float]] = defaultdict(list)
    succeeded: dict[str, int] = defaultdict(int)
    for _, pipeline, outcome, duration_s in digests:
        durations[pipeline].append(duration_s)
        succeeded[pipeline] += outcome is Outcome.SUCCEEDED
    rows = []
    for pipeline in sorted(durations):
        ordered = sorted(durations[pipeline])
        rows.append(
            PipelineSummary(
                pipeline,
                len(ordered),
                succeeded[pipeline],
                _percentile(ordered, 0.50),
                _percentile(ordered, 0.95),
            )
        )
    return rows


@dataclass(frozen=True)
class Moment:
    """One event on a participant's time axis, placed in percent of the session's span."""

    row: str  # "session" (start and saves) or "generations"
    at: str
    place: float
    label: str
    kind: str  # start, save, stage (a save that changed the stage), or the outcome


def participant_timeline(
    created: datetime | None, marks: Sequence[SaveMark], records: Sequence[GenerationRecord]
) -> dict[str, object]:
    """Start, every save (stage changes marked), every generation with its outcome, on one
    time axis; and the time spent in each stage."""
    times = [t for t in (created, *(m.at for m in marks), *(r.started_at for r in records)) if t]
    if not times:
        return {"moments": [], "stages": []}
    first, last = min(times), max(times)
    span = max((last - first).total_seconds(), 1e-6)

    def place(at: datetime) -> float:
        return round((at - first).total_seconds() / span * 100, 2)

    moments = []
    if created is not None:
        moments.append(Moment("session", _clock(created), place(created), "start", "start"))
    stage = Stage.NOT_READY
    for mark in marks:
        changed = mark.stage is not stage
        label = f"{mark.stage.value}" if changed else "save"
        schemes = "/".join(map(str, mark.schemes))
        moments.append(
            Moment(
                "session",
                _clock(mark.at),
                place(mark.at),
                f"{label} ({schemes})",
                "stage" if changed else "save",
            )
        )
        stage = mark.stage
    for record in sorted(records, key=lambda r: r.started_at):
        moments.append(
            Moment(
                "generations",
                _clock(record.started_at),
                place(record.started_at),
                f"{record.pipeline.value} {record.outcome.value}",
                record.outcome.value,
            )
        )
    stages = [
        (spent_in.value, f"{seconds / 60:.1f} min")
        for spent_in, seconds in stage_durations(marks, created, last)
    ]
    return {"moments": moments, "stages": stages, "from": _clock(first), "to": _clock(last)}


def _clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Bar:
    """One step of the waterfall, as percentages of the run's duration."""

    label: str
    offset: float
    width: float
    seconds: str
    failed: bool


def waterfall(record: GenerationRecord) -> list[Bar]:
    """Every text attempt and image step on the run's time axis, in the order they began."""
    total = max(record.duration_s, 1e-6)
    steps = [
        (
            step.started_at,
            step.finished_at,
            f"{step.name.rsplit('/', 1)[-1]} #{step.attempt}",
            step.error is not None,
        )
        for step in record.text_steps
    ] + [
        (step.started_at, step.finished_at, f"image {step.name}", step.error is not None)
        for step in record.image_steps
    ]
    bars = []
    for started, finished, label, failed in sorted(steps, key=lambda s: s[0]):
        offset = (started - record.started_at).total_seconds() / total * 100
        length = (finished - started).total_seconds()
        bars.append(
            Bar(
                label=label,
                offset=round(min(max(offset, 0.0), 100.0), 2),
                width=round(max(length / total * 100, 0.4), 2),
                seconds=f"{length:.2f}",
                failed=failed,
            )
        )
    return bars
