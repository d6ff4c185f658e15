"""In-memory experiment repository: for unit tests and `INSPILOT_STORAGE_BACKEND=memory`.

Keeps the same promises as the MongoDB adapter (the shared contract suite checks it):
schemes come back equal to what was saved, saves are whole, records are newest first.
Data is gone when the process ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from application.ports import (
    ExperimentRepository,
    ParticipantSummary,
    PictureStore,
    StorageProbe,
    StudyFilter,
)
from domain.attribution import Attribution, Evidence
from domain.errors import NotFound
from domain.experiment import SCHEME_STAGES, ConditionMove, Experiment
from domain.generation import GenerationRecord, Outcome
from domain.images import image_sha256
from domain.timeline import SAVE_MARKS_KEPT, SaveMark


def _keys_of(experiment: Experiment) -> tuple[frozenset[str], frozenset[str]]:
    held = Evidence.of_schemes(s for stage in SCHEME_STAGES for s in experiment.schemes_of(stage))
    return held.sketches, held.texts


class InMemoryExperimentRepository(ExperimentRepository, StorageProbe, PictureStore):
    def __init__(self) -> None:
        self._experiments: dict[str, Experiment] = {}
        self._generations: dict[str, GenerationRecord] = {}
        self._lock = asyncio.Lock()
        # The indexes the Mongo adapter keeps: sketch and notes keys of each session.
        self._keys: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._addresses: dict[str, dict[str, datetime]] = {}
        self._places: dict[tuple[str, str], int] = {}
        self._saves: dict[str, deque[SaveMark]] = {}
        # Jobs' pictures by hash (the same bytes objects their records hold).
        self._pictures: dict[str, bytes] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def round_trip(self) -> None:
        """Memory always holds what it was given: nothing to prove."""
        return None

    async def get_or_create(self, experiment: Experiment) -> Experiment:
        async with self._lock:
            existing = self._experiments.get(experiment.username)
            if existing is not None:
                return existing
            self._experiments[experiment.username] = experiment
            self._keys[experiment.username] = _keys_of(experiment)
            return experiment

    async def get(self, username: str) -> Experiment | None:
        return self._experiments.get(username)

    async def save_marks(self, username: str) -> Sequence[SaveMark]:
        return list(self._saves.get(username, ()))

    async def save(self, experiment: Experiment) -> None:
        async with self._lock:
            stored = self._experiments.get(experiment.username)
            if stored is None:
                raise NotFound(
                    f"username: no session for '{experiment.username}', call /paint/start first"
                )
            # The id, creation time and condition belong to the stored session, not to
            # the caller: a save never changes a participant's condition.
            self._experiments[experiment.username] = replace(
                experiment,
                id=stored.id,
                created_at=stored.created_at,
                condition=stored.condition,
                condition_moves=stored.condition_moves,
            )
            self._keys[experiment.username] = _keys_of(experiment)
            if experiment.updated_at is not None:
                marks = self._saves.setdefault(experiment.username, deque(maxlen=SAVE_MARKS_KEPT))
                marks.append(SaveMark.of(experiment, experiment.updated_at))

    async def add_generation(self, record: GenerationRecord) -> None:
        self._generations[record.id] = record

    async def get_generation(
        self, record_id: str, *, with_images: bool = True
    ) -> GenerationRecord | None:
        record = self._generations.get(record_id)
        if record is None or with_images:
            return record
        return record.without_images()

    async def list_generations(
        self,
        username: str | None = None,
        limit: int = 100,
        *,
        with_images: bool = True,
        condition: str | None = None,
    ) -> Sequence[GenerationRecord]:
        records = [
            record
            for record in self._generations.values()
            if (username is None or record.username == username)
            and (condition is None or record.condition == condition)
        ]
        records.sort(key=lambda record: record.started_at, reverse=True)
        records = records[: max(limit, 0)]
        return records if with_images else [record.without_images() for record in records]

    async def get_image(self, record_id: str, step_id: str) -> bytes | None:
        record = self._generations.get(record_id)
        if record is None:
            return None
        return record.image_of(step_id)

    async def keep_pictures(self, pictures: Mapping[str, bytes]) -> dict[str, str]:
        refs = {step: image_sha256(data) for step, data in pictures.items()}
        for step, ref in refs.items():
            self._pictures[ref] = pictures[step]
        return refs

    async def load_picture(self, ref: str) -> bytes | None:
        return self._pictures.get(ref)

    async def list_participants(self) -> Sequence[ParticipantSummary]:
        summaries = []
        for username in sorted(self._experiments):
            experiment = self._experiments[username]
            records = [r for r in self._generations.values() if r.username == username]
            summaries.append(
                ParticipantSummary(
                    username=username,
                    current_stage=experiment.current_stage,
                    design_task=experiment.design_task,
                    created_at=experiment.created_at,
                    updated_at=experiment.updated_at,
                    generations=len(records),
                    failures=sum(1 for r in records if r.outcome is Outcome.FAILED),
                    last_generation_at=max((r.started_at for r in records), default=None),
                    condition=experiment.condition,
                )
            )
        return summaries

    async def iter_sessions(self, study: StudyFilter) -> AsyncIterator[Experiment]:
        for username in sorted(self._experiments):
            experiment = self._experiments.get(username)
            if experiment is not None and study.admits_session(experiment):
                yield experiment

    async def iter_generations(self, study: StudyFilter) -> AsyncIterator[GenerationRecord]:
        chosen = [r for r in self._generations.values() if study.admits_record(r)]
        for record in sorted(chosen, key=lambda record: record.started_at):
            yield record.without_images()

    # -- attribution -------------------------------------------------------------------

    async def participants_with_sketches(self, keys: Collection[str]) -> set[str]:
        wanted = set(keys)
        return {user for user, (sketches, _) in self._keys.items() if sketches & wanted}

    async def participants_with_texts(self, keys: Collection[str]) -> set[str]:
        wanted = set(keys)
        return {user for user, (_, texts) in self._keys.items() if texts & wanted}

    async def note_address(self, username: str, address: str, at: datetime) -> None:
        self._addresses.setdefault(address, {})[username] = at

    async def participants_at_address(self, address: str, since: datetime) -> set[str]:
        seen = self._addresses.get(address, {})
        return {user for user, at in seen.items() if at >= since}

    async def unattributed_generations(
        self, since: datetime, evidence: Evidence
    ) -> Sequence[tuple[str, Evidence]]:
        return [
            (record.id, record.evidence)
            for record in self._generations.values()
            if record.username is None
            and record.started_at >= since
            and record.evidence.shares_with(evidence)
        ]

    async def attribute_generation(self, record_id: str, attribution: Attribution) -> bool:
        record = self._generations.get(record_id)
        if record is None or record.username is not None:
            return False
        self._generations[record_id] = record.attributed(attribution)
        return True

    # -- study conditions ------------------------------------------------------------------

    async def set_condition(self, username: str, condition: str) -> bool:
        async with self._lock:
            stored = self._experiments.get(username)
            if stored is None or stored.condition is not None:
                return False
            self._experiments[username] = replace(stored, condition=condition)
            return True

    async def condition_of(self, username: str) -> str | None:
        stored = self._experiments.get(username)
        return None if stored is None else stored.condition

    async def move_condition(self, username: str, move: ConditionMove) -> None:
        async with self._lock:
            stored = self._experiments.get(username)
            if stored is None:
                raise NotFound(f"username: no session for '{username}'")
            self._experiments[username] = replace(
                stored,
                condition=move.to_condition,
                condition_moves=(*stored.condition_moves, move),
            )

    async def take_condition_place(self, study: str, conditions: Sequence[str]) -> str:
        async with self._lock:
            chosen = min(conditions, key=lambda name: self._places.get((study, name), 0))
            self._places[(study, chosen)] = self._places.get((study, chosen), 0) + 1
            return chosen

    async def give_back_condition_place(self, study: str, condition: str) -> None:
        async with self._lock:
            key = (study, condition)
            self._places[key] = max(self._places.get(key, 0) - 1, 0)
