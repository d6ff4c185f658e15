"""One pipeline run: asks the models, parses their answers and records every step."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypedDict

from application.concurrency import run_all
from application.ports import (
    Clock,
    ExperimentRepository,
    GeneratedImage,
    GenerationObserver,
    ImageGenerator,
    ImageRequest,
    PromptCatalog,
    RunStarted,
    TemplateVersion,
    TextAnswer,
    TextGenerator,
    TextRequest,
)
from application.steps import StepSpec
from domain.attribution import AttributedBy, Attribution
from domain.errors import InsPilotError, ModelAnswerInvalid
from domain.experiment import OPEN_ROSTER, Roster, new_id
from domain.generation import (
    GenerationRecord,
    ImageStep,
    Outcome,
    Pipeline,
    Source,
    TextStep,
    cancellation_outcome,
)
from domain.listparse import ListMismatch, parse_list
from domain.progress import ImageProgress, ProgressEvent, StepProgress, StepStatus
from domain.stimuli import Shown

if TYPE_CHECKING:
    from application.attribution import Attributor, RunContext

logger = logging.getLogger(__name__)

Reconcile = Callable[[str], list[str] | ListMismatch]
ProgressSink = Callable[[ProgressEvent], None]
"""Told of every step and picture as the run goes; must not block (it runs on the loop)."""


class _Versioned(TypedDict):
    """What an image step records of the template and options that made its request."""

    template: str | None
    template_version: str | None
    prompt_set_version: str | None
    options: dict[str, Any]  # JSON txt2img options, as ImageStep.options keeps them


def _unwatched(event: ProgressEvent) -> None:
    """The sink of a run nobody watches."""


run_source: ContextVar[Source] = ContextVar("inspilot_run_source", default=Source.LEGACY)
"""Which edge asked for the runs started in this context (a job's task sets its own)."""
planned_generation_id: ContextVar[str | None] = ContextVar("inspilot_generation_id", default=None)
"""The id the next run in this context takes, so a job can name its record before it
starts; set in a job's own task, where exactly one run happens."""


class ModelGateway:
    """The ports a pipeline needs, bundled so use cases take one argument, not five."""

    def __init__(
        self,
        text: TextGenerator,
        images: ImageGenerator,
        prompts: PromptCatalog,
        repository: ExperimentRepository,
        clock: Clock,
        list_attempts: int = 3,
        observers: Sequence[GenerationObserver] = (),
        request_id: Callable[[], str | None] = lambda: None,
        roster: Roster = OPEN_ROSTER,
        attributor: Attributor | None = None,
        context: RunContext | None = None,
    ) -> None:
        self.text = text
        self.images = images
        self.prompts = prompts
        self.repository = repository
        self.clock = clock
        self.list_attempts = list_attempts
        self.observers = tuple(observers)
        # Where the current request's id comes from (the HTTP layer's context), so the
        # record links to the request's log lines without the core knowing about HTTP.
        self.request_id = request_id
        self.roster = roster
        # Who the runs belong to and which condition they run in; None: nobody, default.
        self.context = context
        self.attributor = attributor
        self._late_checks: set[asyncio.Task[None]] = set()

    def bound(self, context: RunContext) -> ModelGateway:
        """The gateway for one request: its participant and its condition's prompt set,
        text model and image options."""
        gateway = copy.copy(self)  # shares the late checks' task set with this one
        gateway.prompts = context.condition.prompts
        gateway.context = context
        return gateway

    def saves_seen(self) -> int:
        return 0 if self.attributor is None else self.attributor.saves_seen

    def look_again_later(self, record: GenerationRecord, saves_at_start: int) -> None:
        """A record that ran unattributed while a save arrived: its evidence is judged
        again once it is queued, off the reply's path (the save looked before the record
        existed). Saves on another replica are not seen here; their look-again covers
        only stored records."""
        if self.attributor is None or record.username is not None or record.evidence.empty:
            return
        if self.attributor.saves_seen == saves_at_start:
            return
        task = asyncio.create_task(self._look_again(record))
        self._late_checks.add(task)
        task.add_done_callback(self._late_checks.discard)

    async def _look_again(self, record: GenerationRecord) -> None:
        assert self.attributor is not None
        try:
            found = await self.attributor.by_evidence(record.evidence)
            if found.participant is not None:
                late = replace(found, at=self.clock.now())
                await self.repository.attribute_generation(record.id, late)
        except InsPilotError as exc:
            logger.warning("attribution of %s after its run failed: %s", record.id, exc.message)

    def notify(self, event: Callable[[GenerationObserver], None]) -> None:
        """Tell every observer; monitoring must never fail a participant's run."""
        for observer in self.observers:
            try:
                event(observer)
            except Exception:
                logger.exception("generation observer %s failed", type(observer).__name__)

    def run(
        self,
        pipeline: Pipeline,
        inputs: dict[str, Any],
        username: str | None,
        *,
        progress: ProgressSink | None = None,
        images: int = 0,
    ) -> GenerationRun:
        """A run for `username`; one outside a closed roster is refused before anything runs.

        `images` is how many pictures the run will paint, so progress can show a total.
        """
        if username is not None:
            self.roster.check(username)
        if username is None and self.context is not None:
            username = self.context.attribution.participant
        return GenerationRun(self, pipeline, inputs, username, progress=progress, images=images)


class GenerationRun:
    """Collects the steps of one request; `finish` and `fail` save the record.

    Use as `async with gateway.run(...) as run:`; the record is saved on success and on
    failure, so researchers see the failed runs too.
    """

    def __init__(
        self,
        gateway: ModelGateway,
        pipeline: Pipeline,
        inputs: dict[str, Any],
        username: str | None,
        *,
        progress: ProgressSink | None = None,
        images: int = 0,
    ) -> None:
        self._gateway = gateway
        self._pipeline = pipeline
        self._inputs = inputs
        self._username = username
        self._text_steps: list[TextStep] = []
        self._image_steps: list[ImageStep] = []
        self._started_at = gateway.clock.now()
        self._saves_at_start = gateway.saves_seen()
        self.id = planned_generation_id.get() or new_id()
        self._request_id = gateway.request_id()
        self._source = run_source.get()
        self.result: Any = None
        # What the reply shows, set by the use case with its result.
        self.stimuli: tuple[Shown, ...] = ()
        self._progress = progress or _unwatched
        self._images_expected = images
        self._images_asked = 0
        self._images_done = 0
        # Pinned at the start: an edit swapped in mid-run serves the next run, not this one.
        self._prompts = gateway.prompts.pinned()

    async def __aenter__(self) -> GenerationRun:
        started = RunStarted(
            self.id, self._pipeline, self._username, self._request_id, self._started_at
        )
        self._gateway.notify(lambda observer: observer.run_started(started))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        await self._save(exc)

    async def _save(self, exc: BaseException | None) -> None:
        outcome, error = _ending(exc)
        context = self._gateway.context
        attribution = context.attribution if context is not None else Attribution()
        if self._username is not None and attribution.participant != self._username:
            attribution = Attribution(self._username, AttributedBy.USERNAME)
        record = GenerationRecord(
            pipeline=self._pipeline,
            inputs=self._inputs,
            started_at=self._started_at,
            finished_at=self._gateway.clock.now(),
            outcome=outcome,
            text_steps=tuple(self._text_steps),
            image_steps=tuple(self._image_steps),
            result=self.result,
            error=error,
            error_type=None if exc is None else type(exc).__name__,
            username=self._username,
            id=self.id,
            request_id=self._request_id,
            attributed_by=attribution.by,
            **_condition_fields(context),
            source=self._source,
            stimuli=self.stimuli if exc is None else (),
        )
        self._gateway.notify(lambda observer: observer.run_finished(record))
        await self._gateway.repository.add_generation(record)
        self._gateway.look_again_later(record, self._saves_at_start)

    async def ask_list(
        self,
        spec: StepSpec,
        variables: dict[str, str],
        expected: int,
        *,
        images: Sequence[str] = (),
        options: Sequence[str] = (),
        reconcile: Reconcile | None = None,
        attempts: int | None = None,
    ) -> list[str]:
        """Ask for `expected` items; a count the parser cannot reconcile is asked again."""
        gateway = self._gateway
        prompt = self._prompts.render(spec.key, variables)
        version = self._prompts.version(spec.key)
        condition = gateway.context.condition if gateway.context is not None else None
        request = TextRequest(
            step=spec.key,
            prompt=prompt,
            expected_count=expected,
            images=tuple(images),
            options=tuple(options),
            model=condition.text_model if condition is not None else None,
            endpoints=condition.text_endpoints if condition is not None else (),
        )
        fit = reconcile or (lambda answer: parse_list(answer, expected))
        mismatch: ListMismatch | None = None
        max_attempts = attempts or gateway.list_attempts
        for attempt in range(1, max_attempts + 1):
            started = gateway.clock.now()
            step = TextStep(
                spec.key,
                prompt,
                started,
                started,
                attempt,
                image_count=len(images),
                template=version.path,
                template_version=version.digest,
                prompt_set_version=self._prompts.set_version,
                expected_count=expected,
                choices=tuple(options),
            )
            self._progress(StepProgress(spec.key, StepStatus.STARTED, attempt))
            try:
                answer = await gateway.text.complete(request)
            except InsPilotError as exc:
                self._record(step, error=_describe(exc))
                raise
            fitted = fit(answer.text)
            if isinstance(fitted, ListMismatch):
                mismatch = fitted
                self._record(step, answer=answer, error=fitted.describe())
                continue
            self._record(step, answer=answer, items=tuple(fitted))
            return fitted
        detail = mismatch.describe() if mismatch else "no usable answer"
        raise ModelAnswerInvalid(
            f"text model: step {spec.key} gave an unusable list "
            f"({detail}) after {max_attempts} attempts"
        )

    def _record(self, step: TextStep, answer: TextAnswer | None = None, **outcome: Any) -> None:
        """Keep one attempt, stamped with the time it ended, with who answered it, and tell
        the watcher."""
        if answer is not None:
            outcome.update(
                raw_answer=answer.text,
                model=answer.model,
                endpoint=answer.endpoint,
                image_sizes=answer.image_sizes,
            )
        ended = replace(step, finished_at=self._gateway.clock.now(), **outcome)
        self._text_steps.append(ended)
        status = StepStatus.FAILED if ended.error else StepStatus.FINISHED
        seconds = (ended.finished_at - ended.started_at).total_seconds()
        self._progress(StepProgress(ended.name, status, ended.attempt, round(seconds, 3)))

    async def render_images(self, kind: str, prompts: Sequence[str]) -> list[ImageStep]:
        """Render one image per prompt, all at once; any failure fails the whole set."""
        gateway = self._gateway
        if gateway.context is not None:
            template = gateway.context.condition.image_template(self._prompts, kind)
        else:
            template = self._prompts.image_template(kind)
        self._images_asked += len(prompts)
        return await run_all(
            self._render_one(kind, template.request_for(p), template.version) for p in prompts
        )

    async def _render_one(
        self, kind: str, request: ImageRequest, version: TemplateVersion | None
    ) -> ImageStep:
        clock = self._gateway.clock
        started = clock.now()
        versioned: _Versioned = {
            "template": version.path if version else None,
            "template_version": version.digest if version else None,
            "prompt_set_version": self._prompts.set_version,
            "options": request.options(),
        }
        try:
            image: GeneratedImage = await self._gateway.images.generate(request)
        except InsPilotError as exc:
            self._image_steps.append(
                ImageStep(
                    kind,
                    request.prompt,
                    request.negative_prompt,
                    started,
                    clock.now(),
                    error=_describe(exc),
                    **versioned,
                )
            )
            raise
        step = ImageStep(
            kind,
            request.prompt,
            request.negative_prompt,
            started,
            clock.now(),
            image=image.data,
            seed=image.seed,
            model=image.model,
            instance=image.instance,
            **versioned,
        )
        self._image_steps.append(step)
        self._images_done += 1
        total = max(self._images_expected, self._images_asked)
        self._progress(ImageProgress(self._images_done, total))
        return step


def _condition_fields(context: RunContext | None) -> dict[str, Any]:
    if context is None:
        return {}
    return {
        "condition": context.condition.name,
        "condition_by": context.condition_by,
        "evidence": context.evidence,
    }


def _ending(exc: BaseException | None) -> tuple[Outcome, str | None]:
    """The record's outcome and error for how the run ended."""
    if exc is None:
        return Outcome.SUCCEEDED, None
    if isinstance(exc, asyncio.CancelledError):
        # A job cancelled on purpose says so in its message; a vanished client does not.
        return cancellation_outcome(str(exc.args[0]) if exc.args else None)
    return Outcome.FAILED, _describe(exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, InsPilotError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
