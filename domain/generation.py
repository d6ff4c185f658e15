"""The generation record: everything researchers need to see how a stimulus came about."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.attribution import AttributedBy, Attribution, ConditionBy, Evidence
from domain.experiment import new_id
from domain.stimuli import Shown

DEFAULT_CONDITION = "default"


class Pipeline(StrEnum):
    RAPID_DIVERGENCE = "rapid_divergence"
    DEEP_DIVERGENCE = "deep_divergence"
    CONVERGE_SELECT = "converge_select"
    CONVERGE_EXPAND = "converge_expand"


class Outcome(StrEnum):
    """How a run ended, the one vocabulary of records, CSVs, the dashboard and metrics."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a model or our own code failed
    CANCELLED = "cancelled"  # stopped on purpose: a client's cancel, or the service stopping
    ABANDONED = "abandoned"  # the client went away before the answer was ready

    @classmethod
    def stored(cls, value: str, error_type: str | None, error: str | None) -> Outcome:
        """The outcome of a stored record; records written before cancelled and abandoned
        existed say `failed` with a CancelledError, and their message tells which it was."""
        outcome = cls(value)
        if outcome is cls.FAILED and error_type == "CancelledError":
            return cls.CANCELLED if _cancelled_on_purpose(error) else cls.ABANDONED
        return outcome


CANCELLED_PREFIX = "cancelled:"
"""How the message of a run stopped on purpose begins (a job's DELETE, a shutdown)."""
ABANDONED_MESSAGE = "abandoned: the client left before the answer was ready"
_OLD_ABANDONED_MESSAGE = "cancelled: the request was abandoned before it finished"


def _cancelled_on_purpose(message: str | None) -> bool:
    return (
        message is not None
        and message.startswith(CANCELLED_PREFIX)
        and message != _OLD_ABANDONED_MESSAGE
    )


def cancellation_outcome(message: str | None) -> tuple[Outcome, str]:
    """A cancelled run's outcome and error: its message says whether it was meant."""
    if _cancelled_on_purpose(message):
        return Outcome.CANCELLED, str(message)
    return Outcome.ABANDONED, ABANDONED_MESSAGE


class Source(StrEnum):
    """Which edge asked for a run."""

    LEGACY = "legacy"  # the front end's POST /generate
    JOB = "job"  # the jobs API
    CLI = "cli"  # inspilot generate


SKETCH_INPUTS = frozenset({"design_image"})
"""The input fields that carry a participant's sketch (a data URI), at any depth."""


def map_sketches(inputs: Any, change: Callable[[Any], Any]) -> Any:
    """The inputs with every sketch field's value passed through `change`."""
    if isinstance(inputs, dict):
        return {
            key: change(value) if key in SKETCH_INPUTS else map_sketches(value, change)
            for key, value in inputs.items()
        }
    if isinstance(inputs, list):
        return [map_sketches(item, change) for item in inputs]
    return inputs


def sketches_in(inputs: Any) -> list[Any]:
    """Every sketch value in the inputs, in order (None where a scheme had none)."""
    found: list[Any] = []

    def keep(value: Any) -> Any:
        found.append(value)
        return value

    map_sketches(inputs, keep)
    return found


@dataclass(frozen=True)
class TextStep:
    """One request to the text model: the rendered prompt, the raw answer, what we kept."""

    name: str
    prompt: str
    started_at: datetime
    finished_at: datetime
    attempt: int = 1
    raw_answer: str | None = None
    items: tuple[str, ...] = ()
    model: str | None = None
    image_count: int = 0
    error: str | None = None
    # Which wording asked: the template's path under the prompts directory and a hash of
    # its content, so researchers can tell stimuli apart after designers edit a prompt.
    template: str | None = None
    template_version: str | None = None
    endpoint: str | None = None  # which of several text endpoints answered
    # Each image as sent to the model: `2048x1152 -> 1024x576` when it was scaled down.
    image_sizes: tuple[str, ...] = ()
    # The whole prompt set's version (a hash over all its templates) the run was pinned to.
    prompt_set_version: str | None = None
    # The rest of the request, so `inspilot replay` can send it again: how many items were
    # asked and, for a choice, the names offered (None on records made before replay).
    expected_count: int | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageStep:
    """One text-to-image job; `image` holds the PNG bytes that were returned."""

    name: str
    prompt: str
    negative_prompt: str
    started_at: datetime
    finished_at: datetime
    image: bytes | None = None
    seed: int | None = None
    model: str | None = None
    instance: str | None = None
    error: str | None = None
    id: str = field(default_factory=new_id)
    # The image template (positive and negative wrappers and options) and its hash.
    template: str | None = None
    template_version: str | None = None
    prompt_set_version: str | None = None
    # The request's txt2img options as sent (size, steps, sampler, styles, the seed asked
    # for, checkpoint, extra), so `inspilot replay` can send it again; `seed` is the one used.
    options: dict[str, Any] | None = None


@dataclass(frozen=True)
class GenerationRecord:
    """One generation run, successful or not, with every step it took."""

    pipeline: Pipeline
    inputs: dict[str, Any]
    started_at: datetime
    finished_at: datetime
    outcome: Outcome
    text_steps: tuple[TextStep, ...] = ()
    image_steps: tuple[ImageStep, ...] = ()
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    username: str | None = None
    id: str = field(default_factory=new_id)
    # The HTTP request that asked for it (X-Request-ID), to find its log lines; the CLI
    # makes one of its own.
    request_id: str | None = None
    # Which edge asked; None only on records written before sources were recorded.
    source: Source | None = None
    # What the reply showed, in order (empty for a failed run and for older records).
    stimuli: tuple[Shown, ...] = ()
    # `username` is the participant the record belongs to: named by the request, or
    # attributed by a rule (`attributed_by`); `attributed_at` when named after the run.
    attributed_by: AttributedBy | None = None
    attributed_at: datetime | None = None
    # The study condition it ran in, and why that one.
    condition: str = DEFAULT_CONDITION
    condition_by: ConditionBy = ConditionBy.DEFAULT
    # What may still name the participant later (sketch and notes keys, client address).
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def participant(self) -> str | None:
        return self.username

    @property
    def attribution(self) -> Attribution:
        return Attribution(self.username, self.attributed_by, self.attributed_at)

    def attributed(self, attribution: Attribution) -> GenerationRecord:
        """The record named after its participant (by a rule that held later)."""
        return replace(
            self,
            username=attribution.participant,
            attributed_by=attribution.by,
            attributed_at=attribution.at,
        )

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def image_of(self, step_id: str) -> bytes | None:
        """The picture of one image step, None when there is no such step or picture."""
        return next((step.image for step in self.image_steps if step.id == step_id), None)

    def without_images(self) -> GenerationRecord:
        """The record with its pictures' bytes dropped, for light listings."""
        return replace(
            self, image_steps=tuple(replace(step, image=None) for step in self.image_steps)
        )
