"""StartSession and SaveSession: the participant's work, created once and saved whole."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from application.ports import Clock, ExperimentRepository
from domain.errors import NotFound
from domain.experiment import OPEN_ROSTER, SCHEME_STAGES, Experiment, Roster, Scheme, Stage


@dataclass(frozen=True)
class StartSessionCommand:
    username: str


class StartSession:
    """Returns the participant's session, creating an empty one on the first call."""

    def __init__(
        self, repository: ExperimentRepository, clock: Clock, roster: Roster = OPEN_ROSTER
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._roster = roster

    async def execute(self, command: StartSessionCommand) -> Experiment:
        self._roster.check(command.username)
        now = self._clock.now()
        fresh = Experiment(username=command.username, created_at=now, updated_at=now)
        return await self._repository.get_or_create(fresh)


@dataclass(frozen=True)
class SaveSessionCommand:
    """A save replaces what it names; `None`, or a stage absent from `schemes`, is kept."""

    username: str
    current_stage: Stage | None = None
    design_task: str | None = None
    schemes: Mapping[Stage, tuple[Scheme, ...]] = field(default_factory=dict)

    @property
    def names_everything(self) -> bool:
        """The front end's normal save: every field and every stage's list."""
        return (
            self.current_stage is not None
            and self.design_task is not None
            and all(stage in self.schemes for stage in SCHEME_STAGES)
        )


class SaveSession:
    """Saves a started session whole; an unknown participant is NotFound, nothing is created."""

    def __init__(
        self, repository: ExperimentRepository, clock: Clock, roster: Roster = OPEN_ROSTER
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._roster = roster

    async def execute(self, command: SaveSessionCommand) -> None:
        self._roster.check(command.username)
        now = self._clock.now()
        if command.names_everything:
            # Nothing to merge, so the stored session (megabytes of sketches) is not read;
            # the repository keeps its id and creation time and refuses unknown users.
            await self._repository.save(
                Experiment(
                    username=command.username,
                    current_stage=command.current_stage or Stage.NOT_READY,
                    design_task=command.design_task or "",
                    schemes=dict(command.schemes),
                    updated_at=now,
                )
            )
            return
        stored = await self._repository.get(command.username)
        if stored is None:
            raise NotFound(
                f"username: no session for '{command.username}'; start the session first"
            )
        updated = stored.with_saved_state(
            current_stage=command.current_stage,
            design_task=command.design_task,
            schemes=command.schemes,
            at=now,
        )
        await self._repository.save(updated)
