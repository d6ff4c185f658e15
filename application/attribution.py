"""Naming the participant of a generation, before it runs (index lookups only, so the
reply is never delayed) and again when a later save makes a rule hold."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from application.ports import Clock, ExperimentRepository
from application.study import Condition, Study
from domain.attribution import (
    NO_EVIDENCE,
    NOBODY,
    AttributedBy,
    Attribution,
    ConditionBy,
    Evidence,
)
from domain.attribution import only_candidate as _only
from domain.errors import InsPilotError

logger = logging.getLogger("inspilot.attribution")


@dataclass(frozen=True)
class RunContext:
    """Who a run belongs to, and the condition it runs in (and why)."""

    condition: Condition
    condition_by: ConditionBy = ConditionBy.DEFAULT
    attribution: Attribution = NOBODY
    evidence: Evidence = NO_EVIDENCE


class Attributor:
    """The rules, first that holds: named by the request, a signed cookie, sketches or
    notes that match exactly one participant's saved session, the only participant seen
    at the client's address (when enabled). Never a guess between two candidates."""

    def __init__(
        self,
        repository: ExperimentRepository,
        clock: Clock,
        *,
        by_address: bool = False,
        window_s: float = 14400.0,
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._by_address = by_address
        self._window = timedelta(seconds=window_s)
        # Saves looked at so far: a run that saw none arrive while it ran has nothing
        # new to look for when it ends.
        self.saves_seen = 0

    @property
    def by_address(self) -> bool:
        return self._by_address

    async def resolve(
        self, named: str | None, cookie: str | None, evidence: Evidence
    ) -> Attribution:
        if named is not None:
            return Attribution(named, AttributedBy.USERNAME)
        if cookie is not None:
            return Attribution(cookie, AttributedBy.COOKIE)
        return await self.by_evidence(evidence)

    async def by_evidence(self, evidence: Evidence) -> Attribution:
        # Sketches and notes are looked up at once: two index reads cost one round trip.
        by_sketch, by_notes = await asyncio.gather(
            self._candidates(self._repository.participants_with_sketches, evidence.sketches),
            self._candidates(self._repository.participants_with_texts, evidence.texts),
        )
        for found in (_only(by_sketch), _only(by_notes)):
            if found is not None:
                return Attribution(found, AttributedBy.SKETCH)
        if self._by_address and evidence.address is not None:
            since = self._clock.now() - self._window
            found = _only(await self._repository.participants_at_address(evidence.address, since))
            if found is not None:
                return Attribution(found, AttributedBy.ADDRESS)
        return NOBODY

    @staticmethod
    async def _candidates(
        lookup: Callable[[frozenset[str]], Awaitable[set[str]]], keys: frozenset[str]
    ) -> set[str]:
        return await lookup(keys) if keys else set()

    async def note_address(self, username: str, address: str | None) -> None:
        if self._by_address and address is not None:
            await self._repository.note_address(username, address, self._clock.now())

    async def revisit(self, saved: Evidence) -> int:
        """After a save: records of the window that share something with it and had no
        participant are judged again by the same rules; returns how many were named.

        A failure here is logged, never raised: the participant's save is already stored.
        """
        self.saves_seen += 1
        now = self._clock.now()
        named = 0
        try:
            candidates = await self._repository.unattributed_generations(now - self._window, saved)
            for record_id, evidence in candidates:
                attribution = await self.by_evidence(evidence)
                if attribution.participant is None:
                    continue
                late = replace(attribution, at=now)
                named += await self._repository.attribute_generation(record_id, late)
        except InsPilotError as exc:
            logger.warning("attribution: looking again after a save failed: %s", exc.message)
        return named


class RunContexts:
    """The context of one generation request: its participant, then its condition (an
    explicit one, the participant's, the route prefix's, else the study's default)."""

    def __init__(self, study: Study, attributor: Attributor, repository: ExperimentRepository):
        self._study = study
        self._attributor = attributor
        self._repository = repository

    async def for_request(
        self,
        *,
        username: str | None = None,
        cookie: str | None = None,
        evidence: Evidence = NO_EVIDENCE,
        prefix: str | None = None,
        condition: str | None = None,
    ) -> RunContext:
        attribution = await self._attributor.resolve(username, cookie, evidence)
        chosen, why = await self._condition(attribution, prefix, condition)
        return RunContext(chosen, why, attribution, evidence)

    async def _condition(
        self, attribution: Attribution, prefix: str | None, explicit: str | None
    ) -> tuple[Condition, ConditionBy]:
        study = self._study
        if explicit is not None:
            return study.named(explicit), ConditionBy.REQUEST
        if attribution.participant is not None and len(study.conditions) > 1:
            stored = study.get(await self._repository.condition_of(attribution.participant))
            if stored is not None:
                return stored, ConditionBy.PARTICIPANT
        by_prefix = study.get(prefix)
        if by_prefix is not None:
            return by_prefix, ConditionBy.PREFIX
        if attribution.participant is not None and len(study.conditions) == 1:
            return study.default, ConditionBy.PARTICIPANT
        return study.default, ConditionBy.DEFAULT
