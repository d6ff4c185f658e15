"""In-memory experiment repository: for unit tests and `INSPILOT_STORAGE_BACKEND=memory`.

Keeps the same promises as the MongoDB adapter (the shared contract suite checks it):
schemes come back equal to what was saved, saves are whole, records are newest first.
Data is gone when the process ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from application.ports import (
    ExperimentRepository,
    ParticipantSummary,
    StorageProbe,
    StudyFilter,
)
from domain.errors import NotFound
from domain.experiment import Experiment
from domain.generation import GenerationRecord, Outcome


class InMemoryExperimentRepository(ExperimentRepository, StorageProbe):
    def __init__(self) -> None:
        self._experiments: dict[str, Experiment] = {}
        self._generations: dict[str, GenerationRecord] = {}
        self._lock = asyncio.Lock()

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
            return experiment

    async def get(self, username: str) -> Experiment | None:
        return self._experiments.get(username)

    async def save(self, experiment: Experiment) -> None:
        async with self._lock:
            stored = self._experiments.get(experiment.username)
            if stored is None:
                raise NotFound(
                    f"username: no session for '{experiment.username}', call /paint/start first"
                )
            # The id and creation time belong to the stored session, not to the caller.
            self._experiments[experiment.username] = replace(
                experiment, id=stored.id, created_at=stored.created_at
            )

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
        self, username: str | None = None, limit: int = 100, *, with_images: bool = True
    ) -> Sequence[GenerationRecord]:
        records = [
            record
            for record in self._generations.values()
            if username is None or record.username == username
        ]
        records.sort(key=lambda record: record.started_at, reverse=True)
        records = records[: max(limit, 0)]
        return records if with_images else [record.without_images() for record in records]

    async def get_image(self, record_id: str, step_id: str) -> bytes | None:
        record = self._generations.get(record_id)
        if record is None:
            return None
        return record.image_of(step_id)

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
