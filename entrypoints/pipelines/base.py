"""What one generation kind brings to the edges: inputs, command builder, use case, reply.

Every edge (the legacy `/generate`, the jobs API, `inspilot generate`) works from these
entries, so none of them holds a branch per kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Protocol, runtime_checkable

import msgspec

from application.generation_run import ModelGateway, ProgressSink
from domain.attribution import NO_EVIDENCE, Evidence
from domain.creatives import Creative, Item
from domain.errors import InvalidInput
from domain.generation import Pipeline
from domain.images import normalise_image
from entrypoints.settings import Settings
from entrypoints.wire import FieldPath, camel_variant

# Participants write short notes; anything far longer is a client bug that would only
# burn model tokens, so it is refused with a clear rule instead.
MAX_TEXT_CHARS = 2000
MAX_TEXTS_PER_SCHEME = 100

Sketch = Annotated[
    str | None,
    msgspec.Meta(
        description="The sketch: a PNG or JPEG data URI (or bare base64); null when none.",
        extra={"sketch": True},
    ),
]
"""A sketch field; `inspilot generate` reads it from a file path."""


@dataclass(frozen=True)
class Limits:
    max_num: int
    max_image_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(max_num=settings.max_num, max_image_bytes=settings.max_image_mb * 1024 * 1024)


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
    if value is None or value == "":
        return None
    return normalise_image(value, field, limits.max_image_bytes)


def check_texts(values: list[str], field: str) -> tuple[str, ...]:
    if len(values) > MAX_TEXTS_PER_SCHEME:
        raise InvalidInput(field, f"must list at most {MAX_TEXTS_PER_SCHEME} texts")
    return tuple(check_length(text, f"{field}[{index}]") for index, text in enumerate(values))


class ItemOut(msgspec.Struct):
    """A stimulus: all four keys always present. `image` is bare base64 in the legacy
    reply (the front end adds the prefix), a URL in a job's result, a file name on disk."""

    type: str
    text: str | None
    image: str | None
    combinations: list[ItemOut] | None


class CreativeOut(msgspec.Struct, rename="camel"):
    type: int
    display_type: str
    items: list[ItemOut]


ImageRef = Callable[[Item], str]
"""How a picture appears in a reply: its base64, its URL or its file name."""


def present_item(item: Item, image_ref: ImageRef) -> ItemOut:
    return ItemOut(
        type=item.type.value,
        text=item.text,
        image=image_ref(item) if item.image else None,
        combinations=(
            [present_item(part, image_ref) for part in item.combinations]
            if item.combinations
            else None
        ),
    )


def present_creatives(creatives: tuple[Creative, ...], image_ref: ImageRef) -> list[CreativeOut]:
    return [
        CreativeOut(
            type=int(creative.type),
            display_type=creative.display_type.value,
            items=[present_item(item, image_ref) for item in creative.items],
        )
        for creative in creatives
    ]


@runtime_checkable
class PipelineUseCase(Protocol):
    async def execute(self, command: Any, progress: ProgressSink | None = None) -> Any: ...


CommandBuilder = Callable[[Any, Limits, FieldPath, str | None], Any]


def no_evidence(inputs: Any) -> Evidence:
    """A kind whose inputs hold nothing only one participant has (rapid divergence)."""
    return NO_EVIDENCE


@dataclass(frozen=True)
class PipelineEntry:
    """One generation kind.

    `inputs` is its snake_case inputs Struct (the jobs API and the command line); the
    legacy front end sends the same fields in camelCase (`prompts`). `command` builds
    the use case's command from either, naming refused fields the way the client spells
    them; `present` turns the use case's result into the legacy reply's `data`.
    """

    pipeline: Pipeline
    legacy_type: int
    inputs: type[msgspec.Struct]
    command: CommandBuilder
    use_case: Callable[[ModelGateway], PipelineUseCase]
    reply: type[msgspec.Struct]
    present: Callable[[Any, ImageRef], msgspec.Struct]
    # What the inputs carry that may name the participant (sketches, notes).
    evidence: Callable[[Any], Evidence] = no_evidence

    @cached_property
    def prompts(self) -> type[msgspec.Struct]:
        """The inputs as the legacy front end spells them."""
        return camel_variant(self.inputs)

    @property
    def title(self) -> str:
        """CamelCase name, for the schema names of the OpenAPI document."""
        return "".join(word.title() for word in self.pipeline.value.split("_"))

    def build(self, inputs: Any, limits: Limits, at: FieldPath, username: str | None) -> Any:
        """The command; a rule the command itself enforces names the client's field too."""
        names = [info.name for info in msgspec.structs.fields(self.inputs)]
        try:
            return self.command(inputs, limits, at, username)
        except InvalidInput as exc:
            if exc.field not in names:
                raise
            mentioned = re.compile(r"\b(" + "|".join(names) + r")\b")
            rule = mentioned.sub(lambda match: at.spell(match[0]), exc.rule)
            raise InvalidInput(at(exc.field), rule) from None
