"""Decoding client JSON into msgspec Structs, with refusals in the client's own field names."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from operator import or_
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import msgspec

from domain.errors import InvalidInput

T = TypeVar("T")

_AT = re.compile(r"^(?P<rule>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")
_NOT_A_STRING = re.compile(r"Expected `str(?: \| null)?`, got")


def _field_path(prefix: str, path: str) -> str:
    path = path.lstrip(".")
    if not prefix:
        return path
    return f"{prefix}.{path}" if path and not path.startswith("[") else f"{prefix}{path}"


def _refusal(exc: msgspec.ValidationError, prefix: str) -> InvalidInput:
    match = _AT.match(str(exc))
    rule, path = (match["rule"], match["path"] or "") if match else (str(exc), "")
    missing = _MISSING.match(rule)
    if missing:
        field = _field_path(prefix, f"{path}.{missing['name']}")
        return InvalidInput(field or missing["name"], "is required")
    field = _field_path(prefix, path)
    if not field:
        return InvalidInput("body", "must be a JSON object")
    if _NOT_A_STRING.match(rule):
        return InvalidInput(field, "must be a string")
    rule = rule.replace("`", "")
    return InvalidInput(field, rule[0].lower() + rule[1:] if rule else "is invalid")


MAX_JSON_DEPTH = 900
"""About where msgspec stops (the interpreter's recursion limit, 1000, less the stack
in use); the front end's deepest value (a scheme's paths) nests less than ten."""


def decode_struct(raw: bytes | msgspec.Raw, kind: type[T], prefix: str = "") -> T:
    """Decode JSON into `kind` in one pass, numeric strings accepted for numbers.

    `prefix` is where this JSON sits in the client's body (`prompts`), so a refusal
    names the field as the client spells it (`prompts.num: expected int`).
    """
    if not bytes(raw).strip():
        raise InvalidInput(prefix or "body", "is required" if prefix else "must be a JSON object")
    try:
        return msgspec.json.decode(raw, type=kind, strict=False)
    except msgspec.ValidationError as exc:
        raise _refusal(exc, prefix) from None
    except msgspec.DecodeError:
        raise InvalidInput(prefix or "body", "must be valid JSON") from None
    except RecursionError:
        # msgspec stops at the interpreter's recursion limit: a client error, no traceback.
        raise InvalidInput(
            prefix or "body", f"must not nest JSON deeper than {MAX_JSON_DEPTH} levels"
        ) from None


def convert_struct(value: Any, kind: type[T], prefix: str = "") -> T:
    """`decode_struct` for values already in Python (command-line arguments)."""
    try:
        return msgspec.convert(value, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise _refusal(exc, prefix) from None


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


@dataclass(frozen=True)
class FieldPath:
    """How a client spells a field: `prompts.designTexts[1]` (legacy) or
    `inputs.design_texts[1]` (jobs), from the Python names of the inputs Struct."""

    prefix: str
    camel_case: bool = False

    def __call__(self, *parts: str | int) -> str:
        path = self.prefix
        for part in parts:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path = f"{path}.{self.spell(part)}" if path else self.spell(part)
        return path

    def spell(self, name: str) -> str:
        return camel(name) if self.camel_case else name


@functools.cache
def camel_variant(kind: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """The same Struct spelled in camelCase on the wire (Python names stay snake_case),
    nested Structs included: the legacy front end's shape of a job's inputs."""
    fields: list[Any] = []
    for info in msgspec.structs.fields(kind):
        spelled = _camel_type(info.type)
        if info.default is not msgspec.NODEFAULT:
            fields.append((info.name, spelled, info.default))
        elif info.default_factory is not msgspec.NODEFAULT:
            fields.append((info.name, spelled, msgspec.field(default_factory=info.default_factory)))
        else:
            fields.append((info.name, spelled))
    name = kind.__name__.removesuffix("Inputs") + "Prompts"
    return msgspec.defstruct(name, fields, rename="camel", module=kind.__module__)


def _camel_type(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return camel_variant(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list:
        return list[_camel_type(args[0])]  # type: ignore[misc]
    if origin in (Union, UnionType):
        return functools.reduce(or_, (_camel_type(arg) for arg in args))
    if origin is Annotated:
        return Annotated[(_camel_type(args[0]), *annotation.__metadata__)]
    return annotation
