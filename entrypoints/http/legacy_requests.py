"""The front end's request bodies: decoded, checked and turned into commands.

Strict on types and sizes (a username is never an object, a `num` never a list),
tolerant where a real participant's sketch is simply incomplete (no notes, no image).
Every refusal names the field as the front end spells it and the rule it broke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from application.use_cases.converge_expand import ConvergeExpandCommand
from application.use_cases.converge_select import ConvergeSelectCommand, SchemeSketch
from application.use_cases.deep_divergence import DeepDivergenceCommand
from application.use_cases.rapid_divergence import RapidDivergenceCommand
from application.use_cases.sessions import SaveSessionCommand, StartSessionCommand
from domain.errors import InvalidInput
from domain.experiment import SCHEME_STAGES, Stage, check_stage, check_username
from domain.images import normalise_image

T = TypeVar("T")

PAINT_APP_ID = 0
# Participants write short notes; anything far longer is a client bug that would only
# burn model tokens, so it is refused with a clear rule instead.
MAX_TEXT_CHARS = 2000
MAX_TEXTS_PER_SCHEME = 100


class StartBody(msgspec.Struct):
    username: Any = None


class SaveData(msgspec.Struct):
    designSchemes: dict[str, list[dict[str, Any]] | None] | None = None
    designTask: str | None = None
    currentStage: str | None = None


class SaveBody(msgspec.Struct):
    username: Any = None
    data: SaveData | None = None


class GenerateBody(msgspec.Struct):
    appid: int | None = None
    type: int | None = None
    prompts: dict[str, Any] | None = None
    username: Any = None


class RapidPrompts(msgspec.Struct):
    task: str
    num: int


class DeepPrompts(msgspec.Struct):
    designTask: str
    schemeId: int | str
    designTexts: list[str] = []
    designImage: str | None = None


class SelectScheme(msgspec.Struct):
    designTexts: list[str] = []
    designImage: str | None = None


class SelectPrompts(msgspec.Struct):
    designTask: str
    selectNum: int
    schemes: list[SelectScheme]


class ExpandScheme(msgspec.Struct):
    designTexts: list[str] = []


class ExpandPrompts(msgspec.Struct):
    selectedSchemes: list[ExpandScheme]
    num: int


_AT = re.compile(r"^(?P<rule>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")


def _field_path(prefix: str, path: str) -> str:
    path = path.lstrip(".")
    if not prefix:
        return path
    return f"{prefix}.{path}" if path and not path.startswith("[") else f"{prefix}{path}"


def _convert(value: Any, kind: type[T], prefix: str) -> T:
    """msgspec conversion, with numeric strings accepted for numbers, errors in our words."""
    try:
        return msgspec.convert(value, kind, strict=False)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        rule, path = (match["rule"], match["path"] or "") if match else (str(exc), "")
        missing = _MISSING.match(rule)
        if missing:
            field = _field_path(prefix, f"{path}.{missing['name']}")
            raise InvalidInput(field or missing["name"], "is required") from None
        rule = rule.replace("`", "")
        rule = rule[0].lower() + rule[1:] if rule else "is invalid"
        raise InvalidInput(_field_path(prefix, path) or "body", rule) from None


def decode_json(body: bytes) -> Any:
    if not body.strip():
        raise InvalidInput("body", "must be a JSON object")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise InvalidInput("body", "must be valid JSON") from None


def _object(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidInput("body", "must be a JSON object")
    return raw


@dataclass(frozen=True)
class Limits:
    max_num: int
    max_image_bytes: int


def start_command(body: bytes) -> StartSessionCommand:
    parsed = _convert(_object(decode_json(body)), StartBody, "")
    return StartSessionCommand(username=check_username(parsed.username))


def save_command(body: bytes) -> SaveSessionCommand:
    parsed = _convert(_object(decode_json(body)), SaveBody, "")
    username = check_username(parsed.username)
    if parsed.data is None:
        raise InvalidInput("data", "is required")
    schemes: dict[Stage, tuple[dict[str, Any], ...]] = {}
    for stage in SCHEME_STAGES:
        listed = (parsed.data.designSchemes or {}).get(stage.value)
        if listed is not None:
            schemes[stage] = tuple(listed)
    stage = None
    if parsed.data.currentStage is not None:
        stage = check_stage(parsed.data.currentStage, "data.currentStage")
    return SaveSessionCommand(
        username=username,
        current_stage=stage,
        design_task=parsed.data.designTask,
        schemes=schemes,
    )


def _check_num(value: int, field: str, limits: Limits) -> int:
    if not 1 <= value <= limits.max_num:
        raise InvalidInput(field, f"must be between 1 and {limits.max_num}")
    return value


def _check_length(value: str, field: str) -> str:
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInput(field, f"must be at most {MAX_TEXT_CHARS} characters")
    return value.strip()


def _check_text(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidInput(field, "must not be empty")
    return _check_length(value, field)


def _image(value: str | None, field: str, limits: Limits) -> str | None:
    if value is None or value == "":
        return None
    return normalise_image(value, field, limits.max_image_bytes)


def _texts(values: list[str], field: str) -> tuple[str, ...]:
    if len(values) > MAX_TEXTS_PER_SCHEME:
        raise InvalidInput(field, f"must list at most {MAX_TEXTS_PER_SCHEME} texts")
    return tuple(_check_length(text, f"{field}[{index}]") for index, text in enumerate(values))


@dataclass(frozen=True)
class GenerateRequest:
    kind: int
    command: Any


def generate_command(body: bytes, limits: Limits) -> GenerateRequest:
    parsed = _convert(_object(decode_json(body)), GenerateBody, "")
    if parsed.appid is None:
        raise InvalidInput("appid", "is required")
    if parsed.appid != PAINT_APP_ID:
        raise InvalidInput("appid", f"unknown application {parsed.appid}; only 0 (paint) exists")
    if parsed.type is None:
        raise InvalidInput("type", "is required")
    if parsed.prompts is None:
        raise InvalidInput("prompts", "is required")
    username = None if parsed.username is None else check_username(parsed.username)
    builders = {0: _rapid, 1: _deep, 2: _select, 3: _expand}
    builder = builders.get(parsed.type)
    if builder is None:
        raise InvalidInput("type", f"unknown type {parsed.type}; must be 0, 1, 2 or 3")
    return GenerateRequest(parsed.type, builder(parsed.prompts, limits, username))


def _rapid(raw: dict[str, Any], limits: Limits, username: str | None) -> RapidDivergenceCommand:
    prompts = _convert(raw, RapidPrompts, "prompts")
    return RapidDivergenceCommand(
        task=_check_text(prompts.task, "prompts.task"),
        num=_check_num(prompts.num, "prompts.num", limits),
        username=username,
    )


def _deep(raw: dict[str, Any], limits: Limits, username: str | None) -> DeepDivergenceCommand:
    prompts = _convert(raw, DeepPrompts, "prompts")
    return DeepDivergenceCommand(
        design_task=_check_length(prompts.designTask, "prompts.designTask"),
        design_texts=_texts(prompts.designTexts, "prompts.designTexts"),
        design_image=_image(prompts.designImage, "prompts.designImage", limits),
        scheme_id=prompts.schemeId,
        username=username,
    )


def _select(raw: dict[str, Any], limits: Limits, username: str | None) -> ConvergeSelectCommand:
    prompts = _convert(raw, SelectPrompts, "prompts")
    if prompts.selectNum < 1:
        raise InvalidInput("prompts.selectNum", "must be at least 1")
    if not prompts.schemes:
        raise InvalidInput("prompts.schemes", "must list at least one scheme")
    if len(prompts.schemes) > limits.max_num * 4:
        raise InvalidInput("prompts.schemes", f"must list at most {limits.max_num * 4} schemes")
    schemes = tuple(
        SchemeSketch(
            design_texts=_texts(scheme.designTexts, f"prompts.schemes[{index}].designTexts"),
            design_image=_image(
                scheme.designImage, f"prompts.schemes[{index}].designImage", limits
            ),
        )
        for index, scheme in enumerate(prompts.schemes)
    )
    return ConvergeSelectCommand(
        design_task=_check_length(prompts.designTask, "prompts.designTask"),
        select_num=prompts.selectNum,
        schemes=schemes,
        username=username,
    )


def _expand(raw: dict[str, Any], limits: Limits, username: str | None) -> ConvergeExpandCommand:
    prompts = _convert(raw, ExpandPrompts, "prompts")
    if not prompts.selectedSchemes:
        raise InvalidInput("prompts.selectedSchemes", "must list at least one scheme")
    num = _check_num(prompts.num, "prompts.num", limits)
    total = num * len(prompts.selectedSchemes)
    if total > limits.max_num * 3:
        raise InvalidInput(
            "prompts.selectedSchemes",
            f"schemes × num must be at most {limits.max_num * 3} (asked {total})",
        )
    return ConvergeExpandCommand(
        selected_schemes=tuple(
            _texts(scheme.designTexts, f"prompts.selectedSchemes[{index}].designTexts")
            for index, scheme in enumerate(prompts.selectedSchemes)
        ),
        num=num,
        username=username,
    )
