"""Progress of a generation while it runs, and the life of a job that runs one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StepStatus(StrEnum):
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


@dataclass(frozen=True)
class StepProgress:
    """One attempt of a text step began or ended; `seconds` is set once it has ended."""

    step: str
    status: StepStatus
    attempt: int
    seconds: float | None = None


@dataclass(frozen=True)
class ImageProgress:
    """Another picture is ready: `done` of the `total` the run will paint."""

    done: int
    total: int


ProgressEvent = StepProgress | ImageProgress


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class JobEnded:
    """The last event of every job: how it ended, and the error when it failed."""

    status: JobStatus
    error: BaseException | None = None


JobEvent = StepProgress | ImageProgress | JobEnded
