"""Ports: what the use cases need from the world, as Protocols adapters name as base classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from string import Template
from typing import Any, Protocol, runtime_checkable

from domain.experiment import Experiment
from domain.generation import GenerationRecord


@dataclass(frozen=True)
class TextRequest:
    """One step's request to the text model.

    `step` names the template (`paint/<pipeline>/products`) so an offline adapter can
    answer in kind; `expected_count` is how many `#`-separated items the step wants;
    `options`, when set, are the only acceptable items (a choice among known names),
    so an adapter can constrain the answer and an offline one can pick among them.
    `images` are data URIs for vision steps.
    """

    step: str
    prompt: str
    expected_count: int
    images: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextAnswer:
    text: str
    model: str


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
        self, username: str | None = None, limit: int = 100, *, with_images: bool = True
    ) -> Sequence[GenerationRecord]:
        """Newest first; without images (`image` None) the listing stays light."""
        ...

    async def get_image(self, record_id: str, step_id: str) -> bytes | None:
        """One image of a record, without loading the others."""
        ...


@dataclass(frozen=True)
class ImageTemplate:
    """How a bare SD prompt becomes a request: positive wrapper, negative, and options."""

    positive: str
    negative: str
    options: dict[str, Any]

    def request_for(self, prompt: str) -> ImageRequest:
        fields = {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in self.options.items()
        }
        return ImageRequest(
            prompt=Template(self.positive).substitute(prompt=prompt),
            negative_prompt=self.negative,
            **fields,
        )


class PromptCatalog(Protocol):
    """The designers' templates, validated at start-up."""

    def render(self, step: str, variables: dict[str, str]) -> str: ...

    def image_template(self, kind: str) -> ImageTemplate: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


@runtime_checkable
class Lifecycle(Protocol):
    """Adapters holding connections open them on the app's event loop and close them there."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...
