"""A pipeline kind as the core knows it: the limits its commands are built under, the
rules every edge goes through, its use case and the result it returns.

Every edge (the legacy `/generate`, the jobs API, `inspilot generate`) and every unit
test builds a command with the command's own `build`, so a rule lives in one place.
Field names in a refusal are the inputs' own snake_case paths (`schemes[2].design_texts`);
an edge re-spells them the way its client does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from application.generation_run import ModelGateway, ProgressSink
from domain.creatives import Creative, images_of
from domain.errors import InvalidInput
from domain.generation import Pipeline
from domain.images import normalise_image

# Participants write short notes; anything far longer is a client bug that would only
# burn model tokens, so it is refused with a clear rule instead.
MAX_TEXT_CHARS = 2000
MAX_TEXTS_PER_SCHEME = 100


@dataclass(frozen=True)
class Limits:
    """How much one request may ask for (operators set these: INSPILOT_MAX_NUM, ...)."""

    max_num: int = 12
    max_image_bytes: int = 8 * 1024 * 1024


def check_num(value: int, field: str, limits: Limits) -> int:
    if not 1 <= value <= limits.max_num:
        raise InvalidInput(field, f"must be between 1 and {limits.max_num}")
    return value


def check_length(value: str, field: str) -> str:
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInput(field, f"must be at most {MAX_TEXT_CHARS} characters")
    return value.strip()


def check_text(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidInput(field, "must not be empty")
    return check_length(value, field)


def check_sketch(value: str | None, field: str, limits: Limits) -> str | None:
    """A missing sketch is fine (the front end may not have exported one)."""
    if value is None or value == "":
        return None
    return normalise_image(value, field, limits.max_image_bytes)


def check_texts(values: list[str] | tuple[str, ...], field: str) -> tuple[str, ...]:
    if len(values) > MAX_TEXTS_PER_SCHEME:
        raise InvalidInput(field, f"must list at most {MAX_TEXTS_PER_SCHEME} texts")
    return tuple(check_length(text, f"{field}[{index}]") for index, text in enumerate(values))


class PipelineResult(Protocol):
    """What every pipeline returns: its creatives (empty for name-and-select)."""

    @property
    def creatives(self) -> tuple[Creative, ...]: ...


def pictures_of(result: PipelineResult) -> Mapping[str, bytes]:
    """The result's pictures by image id (a job serves them one by one)."""
    return images_of(result.creatives)


CommandT = TypeVar("CommandT", contravariant=True)
ResultT = TypeVar("ResultT", bound=PipelineResult, covariant=True)
C = TypeVar("C")
R = TypeVar("R", bound=PipelineResult)


class PipelineUseCase(Protocol[CommandT, ResultT]):
    async def execute(self, command: CommandT, progress: ProgressSink | None = None) -> ResultT: ...


@dataclass(frozen=True)
class PipelineKind(Generic[C, R]):
    """One generation kind: its name, and the use case that runs its commands."""

    pipeline: Pipeline
    use_case: Callable[[ModelGateway], PipelineUseCase[C, R]]

    def on(self, gateway: ModelGateway) -> PipelineUseCase[C, R]:
        """The use case running on `gateway` (bound to a request's participant and condition)."""
        return self.use_case(gateway)
