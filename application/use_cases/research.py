"""Read-only use cases for researchers: sessions, generation records and their images."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from application.ports import ExperimentRepository, ParticipantSummary, StudyFilter
from domain.errors import InvalidInput, NotFound
from domain.experiment import Experiment
from domain.generation import GenerationRecord
from domain.timeline import SaveMark

MAX_LISTED = 500


class GetSession:
    """A participant's stored session; unlike StartSession it never creates one."""

    def __init__(self, repository: ExperimentRepository) -> None:
        self._repository = repository

    async def execute(self, username: str) -> Experiment:
        experiment = await self._repository.get(username)
        if experiment is None:
            raise NotFound(f"username: no session for '{username}'")
        return experiment


@dataclass(frozen=True)
class ListGenerationsQuery:
    username: str | None = None
    limit: int = 100
    condition: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LISTED:
            raise InvalidInput("limit", f"must be between 1 and {MAX_LISTED}")


class ListGenerations:
    """Newest first, without image bytes: a listing must stay light."""

    def __init__(self, repository: ExperimentRepository) -> None:
        self._repository = repository

    async def execute(self, query: ListGenerationsQuery) -> Sequence[GenerationRecord]:
        return await self._repository.list_generations(
            query.username, query.limit, with_images=False, condition=query.condition
        )


class GetGeneration:
    """One record without its image bytes: researchers fetch pictures one by one."""

    def __init__(self, repository: ExperimentRepository) -> None:
        self._repository = repository

    async def execute(self, record_id: str) -> GenerationRecord:
        record = await self._repository.get_generation(record_id, with_images=False)
        if record is None:
            raise NotFound(f"id: no generation record '{record_id}'")
        return record


class GetGenerationImage:
    def __init__(self, repository: ExperimentRepository) -> None:
        self._repository = repository

    async def execute(self, record_id: str, step_id: str) -> bytes:
        image = await self._repository.get_image(record_id, step_id)
        if image is None:
            raise NotFound(f"image: no image '{step_id}' in generation record '{record_id}'")
        return image


class ListParticipants:
    """Every participant at a glance (the dashboard's table): no sketches are loaded."""

    def __init__(self, repository: ExperimentRepository) -> None:
        self._repository = repository

    async def execute(self) -> Sequence[ParticipantSummary]:
        return await self._repository.list_participants()


class ListSaves:
    """When a participant saved, at which stage, with how many schemes (their timeline)."""

    def __init__(self, repository: ExperimentRepository) -> None:
        self._repository = repository

    async def execute(self, username: str) -> Sequence[SaveMark]:
        return await self._repository.save_marks(username)


class ChooseGenerations:
    """The records a study filter chooses, oldest first, light and one at a time."""

    def __init__(self, repository: ExperimentRepository) -> None:
        self._repository = repository

    def execute(self, study: StudyFilter) -> AsyncIterator[GenerationRecord]:
        return self._repository.iter_generations(study)


@dataclass(frozen=True)
class StudyReading:
    """The use cases the dashboard reads through: the research API's, and the few views
    only the dashboard shows (participants at a glance, saves, filtered generations)."""

    get_session: GetSession
    list_generations: ListGenerations
    get_generation: GetGeneration
    list_participants: ListParticipants
    list_saves: ListSaves
    choose_generations: ChooseGenerations
