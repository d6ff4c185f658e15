"""The front end's request bodies: decoded, checked and turned into commands.

Strict on types and sizes (a username is never an object, a `num` never a list),
tolerant where a real participant's sketch is simply incomplete (no notes, no image).
Every refusal names the field as the front end spells it and the rule it broke.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from operator import or_
from typing import Any

import msgspec

from application.pipeline import Limits
from application.use_cases.sessions import SaveSessionCommand, StartSessionCommand
from domain.attribution import NO_EVIDENCE, Evidence
from domain.errors import InvalidInput
from domain.experiment import SCHEME_STAGES, Stage, check_stage, check_username
from entrypoints.http.envelope import reply_schema
from entrypoints.pipelines.base import PipelineEntry
from entrypoints.pipelines.registry import PIPELINES, by_legacy_type
from entrypoints.wire import FieldPath, decode_struct

PAINT_APP_ID = 0


class StartBody(msgspec.Struct):
    username: str | None = None


class SaveData(msgspec.Struct):
    designSchemes: dict[str, list[dict[str, Any]] | None] | None = None
    designTask: str | None = None
    currentStage: str | None = None


class SaveBody(msgspec.Struct):
    username: str | None = None
    data: SaveData | None = None


class GenerateEnvelope(msgspec.Struct):
    """What every `/generate` body shares; `prompts` stays raw until `type` says its shape,
    and `appid` and `type` may arrive as numeric strings."""

    appid: int | None = None
    type: int | None = None
    prompts: msgspec.Raw = msgspec.Raw(b"")
    username: str | None = None


def _generate_body(entry: PipelineEntry) -> Any:
    return msgspec.defstruct(
        f"{entry.title}Generate",
        [("appid", int), ("prompts", entry.prompts), ("username", str | None, None)],
        tag_field="type",
        tag=entry.legacy_type,
    )


GenerateBody: Any = reduce(or_, (_generate_body(entry) for entry in PIPELINES))
"""The `/generate` body as documented: one shape per `type` (the canonical numbers)."""

GenerateReply: Any = reduce(
    or_, (reply_schema(f"{entry.title}Reply", entry.reply) for entry in PIPELINES)
)
"""The `/generate` reply as documented: the envelope with the `data` of each `type`."""


def start_command(body: bytes) -> StartSessionCommand:
    parsed = decode_struct(body, StartBody)
    return StartSessionCommand(username=check_username(parsed.username))


def save_command(body: bytes, max_task_chars: int) -> SaveSessionCommand:
    parsed = decode_struct(body, SaveBody)
    username = check_username(parsed.username)
    if parsed.data is None:
        raise InvalidInput("data", "is required")
    task = parsed.data.designTask
    if task is not None and len(task) > max_task_chars:
        # Checked before storage: a session document over 16 MB was a 503 "storage".
        raise InvalidInput(
            "data.designTask",
            f"must be at most {max_task_chars} characters (INSPILOT_MAX_TASK_CHARS)",
        )
    schemes: dict[Stage, tuple[dict[str, Any], ...]] = {}
    for stage in SCHEME_STAGES:
        listed = (parsed.data.designSchemes or {}).get(stage.value)
        if listed is not None:
            schemes[stage] = tuple(listed)
    current: Stage | None = None
    if parsed.data.currentStage is not None:
        current = check_stage(parsed.data.currentStage, "data.currentStage")
    return SaveSessionCommand(
        username=username,
        current_stage=current,
        design_task=parsed.data.designTask,
        schemes=schemes,
    )


@dataclass(frozen=True)
class GenerateRequest:
    entry: PipelineEntry
    command: Any
    username: str | None = None
    evidence: Evidence = NO_EVIDENCE


def generate_command(body: bytes, limits: Limits) -> GenerateRequest:
    parsed = decode_struct(body, GenerateEnvelope)
    if parsed.appid is None:
        raise InvalidInput("appid", "is required")
    if parsed.appid != PAINT_APP_ID:
        raise InvalidInput("appid", f"unknown application {parsed.appid}; only 0 (paint) exists")
    if parsed.type is None:
        raise InvalidInput("type", "is required")
    if bytes(parsed.prompts).strip() in (b"", b"null"):
        raise InvalidInput("prompts", "is required")
    username = None if parsed.username is None else check_username(parsed.username)
    entry = by_legacy_type(parsed.type)
    prompts = decode_struct(parsed.prompts, entry.prompts, "prompts")
    at = FieldPath("prompts", camel_case=True)
    command = entry.build(prompts, limits, at, username)
    return GenerateRequest(entry, command, username, entry.evidence(prompts))
