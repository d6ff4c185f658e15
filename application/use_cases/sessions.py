"""StartSession and SaveSession: the participant's work, created once and saved whole."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from application.attribution import Attributor
from application.ports import Clock, ExperimentRepository
from application.study import ConditionAssigner
from domain.attribution import Evidence
from domain.errors import NotFound
from domain.experiment import OPEN_ROSTER, SCHEME_STAGES, Experiment, Roster, Scheme, Stage


@dataclass(frozen=True)
class StartSessionCommand:
    """`address` is the client's (for address attribution), `prefix` the condition route
    the request came in on (`/c/{condition}/`), if any."""

    username: str
    address: str | None = None
    prefix: str | None = None


class StartSession:
    """Returns the participant's session, creating an empty one on the first call; a
    participant without a condition is given one, which is then never changed silently."""

    def __init__(
        self,
        repository: ExperimentRepository,
        clock: Clock,
        roster: Roster = OPEN_ROSTER,
        assigner: ConditionAssigner | None = None,
        attributor: Attributor | None = None,
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._roster = roster
        self._assigner = assigner
        self._attributor = attributor

    async def execute(self, command: StartSessionCommand) -> Experiment:
        self._roster.check(command.username)
        now = self._clock.now()
        assigner = self._assigner
        # A rule that needs no counter names the condition in the session it creates.
        condition = assigner.at_creation(command.username, command.prefix) if assigner else None
        fresh = Experiment(
            username=command.username, created_at=now, updated_at=now, condition=condition
        )
        experiment = await self._repository.get_or_create(fresh)
        if experiment.condition is None and self._assigner is not None:
            condition = await self._assigner.assign(command.username, command.prefix)
            experiment = replace(experiment, condition=condition)
        if self._attributor is not None:
            await self._attributor.note_address(command.username, command.address)
        return experiment


@dataclass(frozen=True)
class SaveSessionCommand:
    """A save replaces what it names; `None`, or a stage absent from `schemes`, is kept."""

    username: str
    current_stage: Stage | None = None
    design_task: str | None = None
    schemes: Mapping[Stage, tuple[Scheme, ...]] = field(default_factory=dict)
    address: str | None = None

    @property
    def names_everything(self) -> bool:
        """The front end's normal save: every field and every stage's list."""
        return (
            self.current_stage is not None
            and self.design_task is not None
            and all(stage in self.schemes for stage in SCHEME_STAGES)
        )


class SaveSession:
    """Saves a started session whole; an unknown participant is NotFound, nothing is created.

    Once stored, generations of the attribution window that no rule could name are judged
    again: the front end asks for stimuli of a sketch before the save that first holds it.
    """

    def __init__(
        self,
        repository: ExperimentRepository,
        clock: Clock,
        roster: Roster = OPEN_ROSTER,
        attributor: Attributor | None = None,
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._roster = roster
        self._attributor = attributor

    async def execute(self, command: SaveSessionCommand) -> None:
        await self._save(command)
        if self._attributor is not None:
            await self._attributor.note_address(command.username, command.address)
            address = command.address if self._attributor.by_address else None
            schemes = (scheme for stage in command.schemes.values() for scheme in stage)
            await self._attributor.revisit(Evidence.of_schemes(schemes, address))

    async def _save(self, command: SaveSessionCommand) -> None:
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
