"""Ports: what the use cases need from the world, as Protocols adapters name as base classes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from string import Template
from typing import Any, Protocol, runtime_checkable

from domain.attribution import Attribution, Evidence
from domain.experiment import ConditionMove, Experiment, Stage
from domain.generation import GenerationRecord, Pipeline
from domain.timeline import SaveMark


@dataclass(frozen=True)
class TextRequest:
    """One step's request to the text model.

    `step` names the template (`paint/<pipeline>/products`) so an offline adapter can
    answer in kind; `expected_count` is how many `#`-separated items the step wants;
    `options`, when set, are the only acceptable items (a choice among known names),
    so an adapter can constrain the answer and an offline one can pick among them.
    `images` are data URIs for vision steps. `model` and `endpoints`, when set, come from
    the run's study condition and the adapter must honour them.
    """

    step: str
    prompt: str
    expected_count: int
    images: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    # A study condition's text model (deployment or model name) and the endpoints it may
    # use; empty: the adapter's own configuration.
    model: str | None = None
    endpoints: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextAnswer:
    """The model's text; `endpoint` names the endpoint that answered when there are several."""

    text: str
    model: str
    endpoint: str | None = None
    # What each image sent measured (`2048x1152 -> 1024x576` when scaled down first).
    image_sizes: tuple[str, ...] = ()


class TextGenerator(Protocol):
    """Answers one prompt. Raises ModelError subclasses, never returns an empty answer."""

    async def complete(self, request: TextRequest) -> TextAnswer: ...


@dataclass(frozen=True)
class ImageRequest:
    """A text-to-image job in AUTOMATIC1111 terms; seed -1 lets the adapter choose one."""

    prompt: str
    negative_prompt: str = ""
    width: int = 1024
    height: int = 576
    steps: int = 30
    cfg_scale: float = 5.0
    sampler_name: str = "DPM++ 2M SDE Karras"
    styles: tuple[str, ...] = ("photographic",)
    seed: int = -1
    denoising_strength: float = 0.7
    checkpoint: str | None = "sd_xl_base_1.0"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def with_options(
        cls, prompt: str, negative_prompt: str, options: Mapping[str, Any]
    ) -> ImageRequest:
        """A request from txt2img options as templates and records spell them (lists)."""
        converted: dict[str, Any] = {  # JSON values, checked by the fields they fill
            key: tuple(value) if isinstance(value, list) else value
            for key, value in options.items()
        }
        return cls(prompt=prompt, negative_prompt=negative_prompt, **converted)

    def options(self) -> dict[str, Any]:
        """Everything but the prompts, JSON-shaped (lists, not tuples), as a record keeps it."""
        return {
            item.name: list(value) if isinstance(value, tuple) else value
            for item in fields(self)
            if item.name not in ("prompt", "negative_prompt")
            for value in [getattr(self, item.name)]
        }


@dataclass(frozen=True)
class GeneratedImage:
    """A rendered image: PNG (or JPEG) bytes, never empty, and where it came from."""

    data: bytes
    seed: int
    model: str | None = None
    instance: str | None = None

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("a generated image cannot be empty")


class ImageGenerator(Protocol):
    """Renders one image. Raises ModelError subclasses; a blank image is never returned."""

    async def generate(self, request: ImageRequest) -> GeneratedImage: ...


@dataclass(frozen=True)
class ParticipantSummary:
    """One participant at a glance: their session's state and how their generations went."""

    username: str
    current_stage: Stage
    design_task: str
    created_at: datetime | None
    updated_at: datetime | None
    generations: int = 0
    failures: int = 0
    last_generation_at: datetime | None = None
    condition: str | None = None

    @property
    def last_activity(self) -> datetime | None:
        times = [at for at in (self.updated_at, self.last_generation_at) if at is not None]
        return max(times, default=None)


@dataclass(frozen=True)
class StudyFilter:
    """Which part of a study to read: some participants (None: all), a time window.

    Generations are chosen by their start, sessions by their last update; `since` is
    inclusive and `until` exclusive, so consecutive windows never overlap.
    """

    usernames: frozenset[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    conditions: frozenset[str] | None = None

    def _in_window(self, at: datetime | None) -> bool:
        if at is None:
            return self.since is None and self.until is None
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)

    def admits_session(self, experiment: Experiment) -> bool:
        return (
            (self.usernames is None or experiment.username in self.usernames)
            and (self.conditions is None or experiment.condition in self.conditions)
            and self._in_window(experiment.updated_at)
        )

    def admits_record(self, record: GenerationRecord) -> bool:
        return (
            (self.usernames is None or record.username in self.usernames)
            and (self.conditions is None or record.condition in self.conditions)
            and self._in_window(record.started_at)
        )


@runtime_checkable
class ExperimentRepository(Protocol):
    """Sessions and generation records. Saves are whole: a reader sees old or new, never a mix."""

    async def get_or_create(self, experiment: Experiment) -> Experiment:
        """The stored experiment for `experiment.username`, storing the given one if none."""
        ...

    async def get(self, username: str) -> Experiment | None: ...

    async def save(self, experiment: Experiment) -> None:
        """Replace the stored experiment of that username; NotFound if it was never started."""
        ...

    async def add_generation(self, record: GenerationRecord) -> None: ...

    async def get_generation(
        self, record_id: str, *, with_images: bool = True
    ) -> GenerationRecord | None: ...

    async def list_generations(
        self,
        username: str | None = None,
        limit: int = 100,
        *,
        with_images: bool = True,
        condition: str | None = None,
    ) -> Sequence[GenerationRecord]:
        """Newest first; without images (`image` None) the listing stays light."""
        ...

    async def get_image(self, record_id: str, step_id: str) -> bytes | None:
        """One image of a record, without loading the others."""
        ...

    async def list_participants(self) -> Sequence[ParticipantSummary]:
        """Every session by username, with its generation counts; no sketches are loaded."""
        ...

    async def save_marks(self, username: str) -> Sequence[SaveMark]:
        """The participant's saves as they arrived, oldest first (the last
        SAVE_MARKS_KEPT), for the timeline; [] for an unknown username."""
        ...

    def iter_sessions(self, study: StudyFilter) -> AsyncIterator[Experiment]:
        """The chosen sessions by username, whole, loaded one at a time (bounded memory)."""
        ...

    def iter_generations(self, study: StudyFilter) -> AsyncIterator[GenerationRecord]:
        """The chosen records oldest first, without image bytes, loaded one at a time."""
        ...

    # -- attribution: every lookup goes through an index, never a scan ------------------

    async def participants_with_sketches(self, keys: Collection[str]) -> set[str]:
        """Participants whose saved session holds a sketch with one of these keys."""
        ...

    async def participants_with_texts(self, keys: Collection[str]) -> set[str]:
        """Participants whose saved session holds a scheme with one of these notes keys."""
        ...

    async def note_address(self, username: str, address: str, at: datetime) -> None:
        """`username` started or saved from `address` at `at` (address attribution only)."""
        ...

    async def participants_at_address(self, address: str, since: datetime) -> set[str]:
        """Participants seen at `address` since `since`."""
        ...

    async def unattributed_generations(
        self, since: datetime, evidence: Evidence
    ) -> Sequence[tuple[str, Evidence]]:
        """Ids and evidence of records without a participant started since `since` that
        share a sketch key, a notes key or the address with `evidence`."""
        ...

    async def attribute_generation(self, record_id: str, attribution: Attribution) -> bool:
        """Name the participant of a record that has none; False if it had one already."""
        ...

    # -- study conditions ------------------------------------------------------------------

    async def set_condition(self, username: str, condition: str) -> bool:
        """Give a started participant without a condition their first one; False when
        they had one already (it is kept)."""
        ...

    async def condition_of(self, username: str) -> str | None:
        """The participant's stored condition, read without loading their sketches."""
        ...

    async def move_condition(self, username: str, move: ConditionMove) -> None:
        """Move a participant to another condition, keeping the move in the session;
        NotFound for a participant never started."""
        ...

    async def take_condition_place(self, study: str, conditions: Sequence[str]) -> str:
        """A place in the condition with the fewest participants (ties: first declared),
        atomically: concurrent callers never both take the last place of one condition."""
        ...

    async def give_back_condition_place(self, study: str, condition: str) -> None: ...


@dataclass(frozen=True)
class TemplateVersion:
    """A template's path (relative to the prompts directory) and a hash of its content."""

    path: str
    digest: str


@dataclass(frozen=True)
class ImageTemplate:
    """How a bare SD prompt becomes a request: positive wrapper, negative, and options."""

    positive: str
    negative: str
    options: dict[str, Any]
    version: TemplateVersion | None = None

    def request_for(self, prompt: str) -> ImageRequest:
        positive = Template(self.positive).substitute(prompt=prompt)
        return ImageRequest.with_options(positive, self.negative, self.options)


class PromptCatalog(Protocol):
    """The designers' templates, validated at start-up and possibly swapped while serving.

    `set_version` is a short hash over all the templates: two records made with the same
    wording carry the same one. `pinned()` is the current set as a catalog that never
    changes, so a run that pins it at its start finishes on the version it started with.
    """

    @property
    def set_version(self) -> str: ...

    def pinned(self) -> PromptCatalog: ...

    def render(self, step: str, variables: dict[str, str]) -> str: ...

    def version(self, step: str) -> TemplateVersion:
        """Which file and content `render(step, ...)` uses, for the generation record."""
        ...

    def image_template(self, kind: str) -> ImageTemplate: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True)
class RunStarted:
    """A pipeline run that has begun; its record will carry the same `id`."""

    id: str
    pipeline: Pipeline
    username: str | None
    request_id: str | None
    started_at: datetime


class GenerationObserver(Protocol):
    """Watches runs for monitoring (metrics, the dashboard's "now" panel).

    Called on the event loop, before the record is stored: must be quick and must not
    raise (a raising observer is logged and ignored, never fails the participant's run).
    """

    def run_started(self, run: RunStarted) -> None: ...

    def run_finished(self, record: GenerationRecord) -> None: ...


@runtime_checkable
class Lifecycle(Protocol):
    """Adapters holding connections open them on the app's event loop and close them there."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class StorageProbe(Protocol):
    """A store that can prove it works: a tiny write read back, not only "the server lives".

    A database that has lost its disk (a WiredTiger panic, a full disk) still answers a
    ping and even reads; only a write tells. Readiness and the embedded supervisor ask this.
    """

    async def round_trip(self) -> None:
        """Write a small marker and read it back; StorageError when either fails."""
        ...


@runtime_checkable
class PictureStore(Protocol):
    """Pictures kept by content, outside the process: a finished job holds references only.

    The MongoDB adapter writes them to its blob store under the SHA-256 a generation
    record uses for the same picture, so the record, written moments later, stores
    nothing twice; every replica reads them at once.
    """

    async def keep_pictures(self, pictures: Mapping[str, bytes]) -> dict[str, str]:
        """Store each picture; its reference by the same key."""
        ...

    async def load_picture(self, ref: str) -> bytes | None:
        """A kept picture; None when it is gone."""
        ...
