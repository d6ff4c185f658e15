"""What one generation kind brings to the edges: inputs, command builder, use case, reply.

Every edge (the legacy `/generate`, the jobs API, `inspilot generate`) works from these
entries, so none of them holds a branch per kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Generic, TypeVar

import msgspec

from application.generation_run import ModelGateway
from application.pipeline import Limits, PipelineKind, PipelineResult, PipelineUseCase
from domain.attribution import NO_EVIDENCE, Evidence
from domain.creatives import Creative, Item
from domain.errors import InvalidInput
from domain.generation import Pipeline
from entrypoints.settings import Settings
from entrypoints.wire import FieldPath, camel_variant

Sketch = Annotated[
    str | None,
    msgspec.Meta(
        description="The sketch: a PNG or JPEG data URI (or bare base64); null when none.",
        extra={"sketch": True},
    ),
]
"""A sketch field; `inspilot generate` reads it from a file path."""


def limits_of(settings: Settings) -> Limits:
    """The operator's limits (INSPILOT_MAX_NUM, INSPILOT_MAX_IMAGE_MB) as the core's value."""
    return Limits(max_num=settings.max_num, max_image_bytes=settings.max_image_mb * 1024 * 1024)


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


InputsT = TypeVar("InputsT", bound=msgspec.Struct)
CommandT = TypeVar("CommandT")
ResultT = TypeVar("ResultT", bound=PipelineResult)

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def no_evidence(inputs: msgspec.Struct) -> Evidence:
    """A kind whose inputs hold nothing only one participant has (rapid divergence)."""
    return NO_EVIDENCE


def _path_parts(field: str) -> list[str | int]:
    """`schemes[2].design_texts` as ["schemes", 2, "design_texts"]."""
    return [int(index) if index else name for name, index in _PATH_PART.findall(field)]


@dataclass(frozen=True)
class PipelineEntry(Generic[InputsT, CommandT, ResultT]):
    """One generation kind at the edge: its wire spelling around the core's kind.

    `inputs` is its snake_case inputs Struct (the jobs API and the command line); the
    legacy front end sends the same fields in camelCase (`prompts`). `command` maps the
    inputs onto the command's own `build`, which enforces the rules; a refusal names the
    field the way the client spells it. `present` turns the result into the legacy
    reply's `data`; `evidence` reads the sketches and notes that may name the participant.
    """

    kind: PipelineKind[CommandT, ResultT]
    legacy_type: int
    inputs: type[InputsT]
    command: Callable[[InputsT, Limits, str | None], CommandT]
    reply: type[msgspec.Struct]
    present: Callable[[ResultT, ImageRef], msgspec.Struct]
    evidence: Callable[[InputsT], Evidence] = no_evidence

    @property
    def pipeline(self) -> Pipeline:
        return self.kind.pipeline

    def use_case(self, gateway: ModelGateway) -> PipelineUseCase[CommandT, ResultT]:
        """The kind's use case on `gateway` (bound to the request's participant and condition)."""
        return self.kind.on(gateway)

    @cached_property
    def prompts(self) -> type[msgspec.Struct]:
        """The inputs as the legacy front end spells them."""
        return camel_variant(self.inputs)

    @property
    def title(self) -> str:
        """CamelCase name, for the schema names of the OpenAPI document."""
        return "".join(word.title() for word in self.pipeline.value.split("_"))

    def build(
        self, inputs: InputsT, limits: Limits, at: FieldPath, username: str | None
    ) -> CommandT:
        """The command; a refused field is named the way the client spells it."""
        names = [info.name for info in msgspec.structs.fields(self.inputs)]
        try:
            return self.command(inputs, limits, username)
        except InvalidInput as exc:
            parts = _path_parts(exc.field)
            if not parts or parts[0] not in names:
                raise
            mentioned = re.compile(r"\b(" + "|".join(names) + r")\b")
            rule = mentioned.sub(lambda match: at.spell(match[0]), exc.rule)
            raise InvalidInput(at(*parts), rule) from None
