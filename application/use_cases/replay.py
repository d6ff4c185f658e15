"""ReplayGeneration: send a recorded generation's requests again and compare the answers.

A replay is a reproducibility check, not a new generation: every recorded text attempt
is sent again with its recorded rendered prompt (never today's templates), item count,
offered choices and sketches, to the text model of the record's condition, and every
picture with its recorded prompts, txt2img options and the seed it was rendered with.
Each step is replayed on its own, so a model that now answers one step differently shows
as that one step in the comparison, and nothing is written to the study's records.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from application.ports import ImageGenerator, ImageRequest, TextGenerator, TextRequest
from application.study import Condition, Study
from domain.errors import InsPilotError
from domain.generation import (
    DEFAULT_CONDITION,
    GenerationRecord,
    ImageStep,
    TextStep,
    sketches_in,
)
from domain.images import image_sha256


class NotReplayable(InsPilotError):
    """The record lacks what a replay must send again (it predates replay)."""


@dataclass(frozen=True)
class ReplayedText:
    step: TextStep  # as recorded
    request: TextRequest
    answer: str | None
    model: str | None = None
    endpoint: str | None = None
    error: str | None = None

    @property
    def same(self) -> bool:
        return self.answer == self.step.raw_answer


@dataclass(frozen=True)
class ReplayedImage:
    step: ImageStep  # as recorded, with its picture
    request: ImageRequest
    image: bytes | None
    model: str | None = None
    instance: str | None = None
    error: str | None = None

    @property
    def sha256(self) -> str | None:
        return None if self.image is None else image_sha256(self.image)

    @property
    def recorded_sha256(self) -> str | None:
        return None if self.step.image is None else image_sha256(self.step.image)

    @property
    def same(self) -> bool:
        return self.sha256 == self.recorded_sha256


@dataclass(frozen=True)
class ReplayResult:
    record: GenerationRecord
    texts: tuple[ReplayedText, ...]
    images: tuple[ReplayedImage, ...]

    @property
    def changed(self) -> list[str]:
        """The steps that came out differently, as `name` (text: `name#attempt`)."""
        texts = [f"{r.step.name}#{r.step.attempt}" for r in self.texts if not r.same]
        return texts + [f"{r.step.name}/{r.step.id}" for r in self.images if not r.same]

    @property
    def same(self) -> bool:
        return not self.changed


def text_request(
    record: GenerationRecord, step: TextStep, condition: Condition | None = None
) -> TextRequest:
    """The request a recorded text attempt sent, to the text model of the record's
    `condition`. Its sketches are the record's sketch inputs in order (the pipelines send
    all of them to a vision step, none elsewhere)."""
    if step.expected_count is None:
        raise NotReplayable(
            f"record {record.id}: step {step.name} keeps no item count "
            "(recorded before replay was supported)"
        )
    images: tuple[str, ...] = ()
    if step.image_count:
        images = tuple(s for s in sketches_in(record.inputs) if isinstance(s, str) and s)
        if len(images) != step.image_count:
            raise NotReplayable(
                f"record {record.id}: step {step.name} sent {step.image_count} sketches, "
                f"the record's inputs hold {len(images)}"
            )
    return TextRequest(
        step=step.name,
        prompt=step.prompt,
        expected_count=step.expected_count,
        images=images,
        options=step.choices,
        model=condition.text_model if condition is not None else None,
        endpoints=condition.text_endpoints if condition is not None else (),
    )


def recorded_condition(record: GenerationRecord, study: Study | None) -> Condition | None:
    """The configured condition the record ran in (its text model, its endpoints).

    A record of the default condition replays on the configured models even when a study
    now names its conditions otherwise; any other condition must still be in the study.
    """
    condition = study.get(record.condition) if study is not None else None
    if condition is None and record.condition != DEFAULT_CONDITION:
        raise NotReplayable(
            f"record {record.id}: its condition '{record.condition}' is not in the "
            "configured study (INSPILOT_STUDY_FILE)"
        )
    return condition


def image_request(record: GenerationRecord, step: ImageStep) -> ImageRequest:
    """The request a recorded picture sent, with the seed it was rendered with."""
    if step.options is None:
        raise NotReplayable(
            f"record {record.id}: image step {step.id} keeps no txt2img options "
            "(recorded before replay was supported)"
        )
    options = dict(step.options)
    if step.seed is not None:
        options["seed"] = step.seed
    return ImageRequest.with_options(step.prompt, step.negative_prompt, options)


class ReplayGeneration:
    """Replays one record on the models given (the configured ones, for the CLI)."""

    def __init__(
        self, text: TextGenerator, images: ImageGenerator, study: Study | None = None
    ) -> None:
        self._text = text
        self._images = images
        self._study = study

    async def execute(self, record: GenerationRecord) -> ReplayResult:
        # Every request is built before any is sent: a record that cannot be replayed
        # whole costs no model calls.
        condition = recorded_condition(record, self._study)
        texts = [(step, text_request(record, step, condition)) for step in record.text_steps]
        images = [(step, image_request(record, step)) for step in record.image_steps]
        replayed_texts = await asyncio.gather(*(self._ask(s, r) for s, r in texts))
        replayed_images = await asyncio.gather(*(self._render(s, r) for s, r in images))
        return ReplayResult(record, tuple(replayed_texts), tuple(replayed_images))

    async def _ask(self, step: TextStep, request: TextRequest) -> ReplayedText:
        try:
            answer = await self._text.complete(request)
        except InsPilotError as exc:
            return ReplayedText(step, request, None, error=exc.message)
        return ReplayedText(step, request, answer.text, answer.model, answer.endpoint)

    async def _render(self, step: ImageStep, request: ImageRequest) -> ReplayedImage:
        try:
            image = await self._images.generate(request)
        except InsPilotError as exc:
            return ReplayedImage(step, request, None, error=exc.message)
        return ReplayedImage(step, request, image.data, image.model, image.instance)
