"""The job board: where every replica sees every job, so any replica can answer for one.

A job runs on the replica that started it; its state and events are written to the
board as they happen. Another replica reads the job there (GET, the SSE stream), asks
the owner to cancel it (the owner polls for such requests), and, when the owner stops
beating, marks its running jobs failed. With one process there is no board at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from application.ports import Clock, ExperimentRepository
from domain.errors import InsPilotError
from domain.generation import GenerationRecord, Outcome, Pipeline, Source
from domain.progress import JobEnded, JobEvent, JobStatus

logger = logging.getLogger("inspilot.jobs")

REPLICA_STOPPED = "the replica running it stopped"
# A follower with nothing new for this many polls checks that the job still exists.
_RECHECK_EVERY = 40


class ReplicaStopped(InsPilotError):
    """The process running a job died before the job ended."""


@dataclass(frozen=True)
class JobView:
    """A job as the board keeps it; `result_view` is its presented result once done."""

    id: str
    generation_id: str
    pipeline: Pipeline
    username: str | None
    created_at: datetime
    status: JobStatus
    replica: str
    finished_at: datetime | None = None
    error: BaseException | None = None
    result_view: Any = None
    # A done job's pictures in the store, by step id (PictureStore references).
    pictures: Mapping[str, str] = field(default_factory=dict)


class JobBoard(Protocol):
    """Jobs and their events shared by every replica (adapters/mongo/job_board.py)."""

    replica: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def admit(self, job: JobView, per_user: int) -> None:
        """Add a queued job, or raise TooManyJobs when its user has `per_user` running."""
        ...

    async def running(self, job: JobView) -> None: ...

    async def add_event(self, job_id: str, seq: int, event: JobEvent) -> None: ...

    async def finish(self, job: JobView) -> None: ...

    async def get(self, job_id: str) -> JobView | None: ...

    async def events(self, job_id: str, after: int) -> Sequence[JobEvent]:
        """The job's events numbered above `after`, in order."""
        ...

    async def request_cancel(self, job_id: str) -> None: ...

    async def cancel_requests(self, job_ids: Sequence[str]) -> Sequence[str]:
        """Which of these (this replica's) jobs another replica asked to cancel."""
        ...

    async def beat(self) -> None: ...

    async def fail_orphans(self) -> Sequence[JobView]:
        """Mark failed the running jobs of replicas that stopped beating; the jobs marked."""
        ...


class RemoteJob:
    """A job running on another replica, read through the board."""

    def __init__(self, view: JobView, board: JobBoard, poll_s: float) -> None:
        self.view = view
        self._board = board
        self._poll_s = poll_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self.view, name)

    @property
    def result(self) -> None:
        return None  # only its presented form (`result_view`) crossed the board

    async def follow(self) -> AsyncIterator[JobEvent]:
        """Every event from the first, polled from the board until the job's end (or until
        the job is gone from the board: every stream ends)."""
        seen = idle = 0
        while True:
            events = await self._board.events(self.view.id, seen)
            for event in events:
                seen += 1
                yield event
                if isinstance(event, JobEnded):
                    return
            if events:
                idle = 0
                continue
            idle += 1
            if idle % _RECHECK_EVERY == 0 and await self._board.get(self.view.id) is None:
                return
            await asyncio.sleep(self._poll_s)


class OrphanRecorder:
    """Records a job whose replica died: a failed generation record under the id the job
    announced, so the researcher sees the attempt (its inputs died with the replica)."""

    def __init__(self, repository: ExperimentRepository, clock: Clock) -> None:
        self._repository = repository
        self._clock = clock

    async def __call__(self, job: JobView) -> None:
        record = GenerationRecord(
            pipeline=job.pipeline,
            inputs={},
            started_at=job.created_at,
            finished_at=job.finished_at or self._clock.now(),
            outcome=Outcome.FAILED,
            error=REPLICA_STOPPED,
            error_type=ReplicaStopped.__name__,
            username=job.username,
            id=job.generation_id,
            source=Source.JOB,
        )
        try:
            await self._repository.add_generation(record)
        except InsPilotError as exc:  # e.g. the replica wrote it just before it died
            logger.warning("job %s: its failure was not recorded: %s", job.id, exc.message)
