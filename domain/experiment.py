"""The participant's experiment: who, at which stage, on which task, with which schemes."""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.errors import InvalidInput, NotPermitted

MAX_USERNAME_LENGTH = 64


class Stage(StrEnum):
    """Stage keys exactly as the front end spells them."""

    NOT_READY = "准备"
    DISABLED = "禁止"
    RAPID_DIVERGENCE = "快速发散"
    DEEP_DIVERGENCE = "深入发散"
    CONVERGENCE = "收敛"
    FINISHED = "完成"


# Stages whose schemes are kept; the others arrive as null in every save.
SCHEME_STAGES: tuple[Stage, ...] = (
    Stage.RAPID_DIVERGENCE,
    Stage.DEEP_DIVERGENCE,
    Stage.CONVERGENCE,
)

Scheme = Mapping[str, Any]
"""A scheme exactly as the client sent it (name, canvasSvg, canvasImage, paths, texts)."""


def new_id() -> str:
    """A 24-hex-digit id, the shape the front end already knows from MongoDB ObjectIds."""
    return secrets.token_hex(12)


def check_username(value: object, field_name: str = "username") -> str:
    """A username is a short, printable string in NFC: never an object that could reach a query."""
    if not isinstance(value, str):
        raise InvalidInput(field_name, "must be a string")
    # NFC first: an NFD "José" (as some keyboards and file systems write it) is the same
    # participant as the NFC one, for the roster and the store alike.
    username = unicodedata.normalize("NFC", value.strip())
    if not username:
        raise InvalidInput(field_name, "must not be empty")
    if len(username) > MAX_USERNAME_LENGTH:
        raise InvalidInput(field_name, f"must be at most {MAX_USERNAME_LENGTH} characters")
    if username.startswith("$"):
        raise InvalidInput(field_name, "must not start with '$'")
    if any(unicodedata.category(char).startswith("C") for char in username):
        raise InvalidInput(field_name, "must not contain control characters")
    return username


def check_stage(value: object, field_name: str = "currentStage") -> Stage:
    if not isinstance(value, str):
        raise InvalidInput(field_name, "must be a string")
    try:
        return Stage(value)
    except ValueError:
        allowed = ", ".join(stage.value for stage in Stage)
        raise InvalidInput(field_name, f"must be one of {allowed}") from None


@dataclass(frozen=True)
class ConditionMove:
    """A researcher moved a participant from one study condition to another."""

    from_condition: str | None
    to_condition: str
    at: datetime


@dataclass(frozen=True)
class Experiment:
    """One participant's session; schemes are stored and returned untouched."""

    username: str
    id: str = field(default_factory=new_id)
    current_stage: Stage = Stage.NOT_READY
    design_task: str = ""
    schemes: Mapping[Stage, tuple[Scheme, ...]] = field(
        default_factory=lambda: {stage: () for stage in SCHEME_STAGES}
    )
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # The study condition, set once when the participant is first started (or moved by a
    # researcher); saves never change it.
    condition: str | None = None
    condition_moves: tuple[ConditionMove, ...] = ()

    def __post_init__(self) -> None:
        check_username(self.username)
        unknown = set(self.schemes) - set(SCHEME_STAGES)
        if unknown:
            raise ValueError(f"schemes kept only for {SCHEME_STAGES}, got {unknown}")

    def schemes_of(self, stage: Stage) -> tuple[Scheme, ...]:
        return self.schemes.get(stage, ())

    @property
    def has_schemes(self) -> bool:
        return any(self.schemes_of(stage) for stage in SCHEME_STAGES)

    def with_saved_state(
        self,
        *,
        current_stage: Stage | None,
        design_task: str | None,
        schemes: Mapping[Stage, tuple[Scheme, ...]],
        at: datetime,
    ) -> Experiment:
        """The experiment after a save: what the save names replaces, the rest stays."""
        merged = {stage: self.schemes_of(stage) for stage in SCHEME_STAGES}
        merged.update(schemes)
        return replace(
            self,
            current_stage=current_stage if current_stage is not None else self.current_stage,
            design_task=design_task if design_task is not None else self.design_task,
            schemes=merged,
            updated_at=at,
        )


@dataclass(frozen=True)
class Roster:
    """The study's participants; an open roster (None) admits any username.

    A stranger who finds the URL must neither create sessions nor read a participant's
    sketches, so a closed roster is checked before anything is read or stored. A roster
    file may also give each participant's study condition (`username,condition`).
    """

    usernames: frozenset[str] | None = None
    conditions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[str]) -> Roster:
        """From `username` or `username,condition` entries."""
        names: set[str] = set()
        conditions: dict[str, str] = {}
        for entry in entries:
            name, _, condition = entry.partition(",")
            username = check_username(name)
            names.add(username)
            if condition.strip():
                conditions[username] = condition.strip()
        return cls(frozenset(names) or None, conditions)

    def check(self, username: str) -> None:
        if self.usernames is not None and username not in self.usernames:
            raise NotPermitted("username: not in this study's roster")

    def condition_of(self, username: str) -> str | None:
        return self.conditions.get(username)


OPEN_ROSTER = Roster()
