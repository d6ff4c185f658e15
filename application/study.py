"""The study: its conditions (prompt set, text model, image options) and how participants
are assigned to them. Without a study file there is one condition, `default`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from application.ports import Clock, ExperimentRepository, ImageTemplate, PromptCatalog
from domain.errors import InvalidInput
from domain.experiment import ConditionMove, Roster
from domain.generation import DEFAULT_CONDITION


class Assignment(StrEnum):
    BALANCED = "balanced"  # a new participant joins the condition with the fewest
    ROSTER = "roster"  # `username,condition` lines of the roster file
    PREFIX = "prefix"  # the `/c/{condition}/` route of their first start


@dataclass(frozen=True)
class Condition:
    """One arm of a study. `images` maps an image kind's short name (`scene`, `product`)
    to txt2img options laid over the prompt set's `options.toml`."""

    name: str
    prompts: PromptCatalog
    text_model: str | None = None
    text_endpoints: tuple[str, ...] = ()
    images: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def image_template(self, catalog: PromptCatalog, kind: str) -> ImageTemplate:
        """The kind's template from `catalog` (this condition's set, perhaps pinned) with
        this condition's options on top."""
        template = catalog.image_template(kind)
        overrides = self.images.get(PurePosixPath(kind).name)
        if not overrides:
            return template
        return replace(template, options={**template.options, **overrides})


@dataclass(frozen=True)
class Study:
    name: str
    conditions: tuple[Condition, ...]
    assignment: Assignment = Assignment.BALANCED

    def __post_init__(self) -> None:
        if not self.conditions:
            raise ValueError("a study has at least one condition")

    @classmethod
    def single(cls, prompts: PromptCatalog) -> Study:
        """No study file: one condition named `default` on the configured prompt set."""
        return cls("default", (Condition(DEFAULT_CONDITION, prompts),))

    @property
    def default(self) -> Condition:
        return self.conditions[0]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(condition.name for condition in self.conditions)

    def get(self, name: str | None) -> Condition | None:
        return next((c for c in self.conditions if c.name == name), None)

    def named(self, name: str, field_name: str = "condition") -> Condition:
        condition = self.get(name)
        if condition is None:
            raise InvalidInput(
                field_name, f"unknown condition '{name}'; must be {', '.join(self.names)}"
            )
        return condition


class ConditionAssigner:
    """Gives a participant their first condition, by the study's assignment rule."""

    def __init__(self, study: Study, repository: ExperimentRepository, roster: Roster) -> None:
        self._study = study
        self._repository = repository
        self._roster = roster

    def at_creation(self, username: str, prefix: str | None) -> str | None:
        """The condition a new session is created with, when its rule needs no counter
        (roster, prefix, a single condition); None when a balanced place must be taken."""
        if self._balanced:
            return None
        return self._by_rule(username, prefix)

    async def assign(self, username: str, prefix: str | None) -> str:
        """The condition now stored for `username`, who has none yet (a balanced study's
        new participant, or a session made before the study had conditions)."""
        study = self._study
        taken = self._balanced
        if taken:
            chosen = await self._repository.take_condition_place(study.name, study.names)
        else:
            chosen = self._by_rule(username, prefix)
        if await self._repository.set_condition(username, chosen):
            return chosen
        # A concurrent first start of the same participant assigned them first.
        if taken:
            await self._repository.give_back_condition_place(study.name, chosen)
        return await self._repository.condition_of(username) or chosen

    @property
    def _balanced(self) -> bool:
        return self._study.assignment is Assignment.BALANCED and len(self._study.conditions) > 1

    def _by_rule(self, username: str, prefix: str | None) -> str:
        if self._study.assignment is Assignment.ROSTER:
            listed = self._study.get(self._roster.condition_of(username))
            return listed.name if listed else self._study.default.name
        if self._study.assignment is Assignment.PREFIX and self._study.get(prefix):
            return prefix or self._study.default.name
        return self._study.default.name


class MoveParticipant:
    """A researcher moves a participant to another condition; the move is kept with its
    time, and a balanced study's counts follow the participant."""

    def __init__(self, study: Study, repository: ExperimentRepository, clock: Clock) -> None:
        self._study = study
        self._repository = repository
        self._clock = clock

    async def execute(self, username: str, condition: str) -> ConditionMove:
        target = self._study.named(condition)
        current = await self._repository.condition_of(username)
        move = ConditionMove(current, target.name, self._clock.now())
        if current == target.name:
            return move
        await self._repository.move_condition(username, move)
        if self._study.assignment is Assignment.BALANCED and len(self._study.conditions) > 1:
            if self._study.get(current) is not None and current is not None:
                await self._repository.give_back_condition_place(self._study.name, current)
            await self._repository.take_condition_place(self._study.name, (target.name,))
        return move
