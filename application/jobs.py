"""Generation jobs: a pipeline run in the background that anyone holding its id can watch.

A job belongs to no request: it runs to its end when its client goes away, its events
are kept so a late subscriber sees them all from the start, and it stays readable for
a while after it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

from application.generation_run import ProgressSink, planned_generation_id, run_source
from application.pipeline import PipelineResult
from application.ports import Clock
from domain.errors import InsPilotError, NotFound, TooManyJobs
from domain.experiment import new_id
from domain.generation import CANCELLED_PREFIX, Pipeline, Source
from domain.progress import JobEnded, JobEvent, JobStatus, ProgressEvent

logger = logging.getLogger("inspilot.jobs")

Work = Callable[[ProgressSink], Awaitable[PipelineResult]]
"""A pipeline run, given the sink its progress goes to; returns the use case's result."""

CANCELLED_BY_CLIENT = f"{CANCELLED_PREFIX} the job was cancelled by its client"
SHUT_DOWN = f"{CANCELLED_PREFIX} the service shut down"


class Job:
    """One run and everything it reported; `result` is the use case's result once done."""

    def __init__(
        self,
        pipeline: Pipeline,
        username: str | None,
        created_at: datetime,
        source: Source = Source.JOB,
    ) -> None:
        self.id = new_id()
        # The id of the generation record the job's run writes, known before it starts.
        self.generation_id = new_id()
        self.source = source
        self.pipeline = pipeline
        self.username = username
        self.created_at = created_at
        self.finished_at: datetime | None = None
        self.status = JobStatus.QUEUED
        self.result: PipelineResult | None = None
        self.error: BaseException | None = None
        self.events: list[JobEvent] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def report(self, event: ProgressEvent) -> None:
        self._publish(event)

    def _publish(self, event: JobEvent) -> None:
        self.events.append(event)
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _end(self, status: JobStatus, at: datetime, error: BaseException | None = None) -> None:
        if self.status.finished:
            return
        self.status = status
        self.error = error
        self.finished_at = at
        self._publish(JobEnded(status, error))

    async def follow(self) -> AsyncIterator[JobEvent]:
        """Every event from the first, then new ones as they come, ending with JobEnded."""
        seen = 0
        while True:
            while seen < len(self.events):
                event = self.events[seen]
                seen += 1
                yield event
                if isinstance(event, JobEnded):
                    return
            await self._wakeup.wait()


class JobService:
    """Starts, finds, cancels and forgets jobs; at most `per_user` running jobs per username
    (jobs without a username share one allowance)."""

    def __init__(self, clock: Clock, ttl_s: float, per_user: int) -> None:
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_s)
        self._per_user = per_user
        self._jobs: dict[str, Job] = {}

    def submit(
        self, pipeline: Pipeline, username: str | None, work: Work, source: Source = Source.JOB
    ) -> Job:
        self._forget_expired()
        running = sum(
            1 for job in self._jobs.values() if job.username == username and not job.status.finished
        )
        if running >= self._per_user:
            raise TooManyJobs(
                f"username: at most {self._per_user} running jobs per user; "
                "wait for one to end or cancel one"
            )
        job = Job(pipeline, username, self._clock.now(), source)
        self._jobs[job.id] = job
        job._task = asyncio.create_task(self._run(job, work), name=f"job-{job.id}")
        return job

    async def _run(self, job: Job, work: Work) -> None:
        # The job's own task has its own context: its one run takes these.
        run_source.set(job.source)
        planned_generation_id.set(job.generation_id)
        job.status = JobStatus.RUNNING
        try:
            result = await work(job.report)
        except asyncio.CancelledError:
            job._end(JobStatus.CANCELLED, self._clock.now())
            return  # the job's own task: nobody else waits for this cancellation
        except Exception as exc:
            if not isinstance(exc, InsPilotError):
                logger.exception("job %s failed unexpectedly", job.id, exc_info=exc)
            job._end(JobStatus.FAILED, self._clock.now(), exc)
            return
        job.result = result
        job._end(JobStatus.DONE, self._clock.now())

    def get(self, job_id: str) -> Job:
        self._forget_expired()
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"id: no job '{job_id}' (unknown, or expired)")
        return job

    async def cancel(self, job_id: str) -> Job:
        """Cancel a running job and wait until its run has let go of its slots and been
        recorded; a job that has ended is returned as it ended."""
        job = self.get(job_id)
        await self._stop(job, CANCELLED_BY_CLIENT)
        return job

    async def _stop(self, job: Job, reason: str) -> None:
        task = job._task
        if task is not None and not task.done():
            task.cancel(reason)
            await asyncio.wait([task])
        # A task cancelled before its first step never ran `_run`.
        job._end(JobStatus.CANCELLED, self._clock.now())

    def _forget_expired(self) -> None:
        now = self._clock.now()
        expired = [
            job_id
            for job_id, job in self._jobs.items()
            if job.finished_at is not None and now - job.finished_at > self._ttl
        ]
        for job_id in expired:
            del self._jobs[job_id]

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        """At shutdown running jobs are cancelled, so their runs are recorded as such."""
        running = [job for job in self._jobs.values() if not job.status.finished]
        for job in running:
            await self._stop(job, SHUT_DOWN)
