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
from typing import Any

from application.generation_run import ProgressSink, planned_generation_id, run_source
from application.job_board import REPLICA_STOPPED, JobBoard, JobView, RemoteJob
from application.pipeline import PipelineResult, pictures_of
from application.ports import Clock, PictureStore
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
        # The result while it runs to its end; once done, with a picture store, only its
        # presented form (`result_view`) and its pictures' references stay in memory.
        self.result: PipelineResult | None = None
        self.result_view: Any = None
        self.pictures: dict[str, str] = {}
        self.error: BaseException | None = None
        self.events: list[JobEvent] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Where each event is also written for the other replicas (JobService sets it).
        self.on_event: Callable[[Job, JobEvent], None] | None = None

    def report(self, event: ProgressEvent) -> None:
        self._publish(event)

    def _publish(self, event: JobEvent) -> None:
        self.events.append(event)
        self._wakeup.set()
        self._wakeup = asyncio.Event()
        if self.on_event is not None:
            self.on_event(self, event)

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


Present = Callable[[Job], Any]
"""A finished job's result as clients read it (set by the HTTP layer), for the board."""

RecordOrphan = Callable[[JobView], Awaitable[None]]
"""Records a job whose replica died (a failed generation record)."""


class JobService:
    """Starts, finds, cancels and forgets jobs; at most `per_user` running jobs per username
    (jobs without a username share one allowance).

    With a board (several replicas), every job is also written there: any replica reads
    and follows it, a cancel asked on another replica reaches its run within `poll_s`,
    the per-user allowance counts every replica's jobs, and the running jobs of a
    replica that stopped beating are marked failed and recorded.
    """

    def __init__(
        self,
        clock: Clock,
        ttl_s: float,
        per_user: int,
        board: JobBoard | None = None,
        *,
        present: Present | None = None,
        record_orphan: RecordOrphan | None = None,
        poll_s: float = 0.25,
        beat_s: float = 5.0,
        max_jobs: int = 1000,
        pictures: PictureStore | None = None,
    ) -> None:
        self._clock = clock
        # Where a finished job's pictures go (the store); without one they stay here.
        self._pictures = pictures if isinstance(pictures, PictureStore) else None
        # Jobs this process holds, running or kept for reading: results carry pictures.
        self._max_jobs = max_jobs
        self._ttl = timedelta(seconds=ttl_s)
        self._per_user = per_user
        self._jobs: dict[str, Job] = {}
        self._board = board
        self._present = present
        self._record_orphan = record_orphan
        self._poll_s = poll_s
        self._beat_s = beat_s
        self._watcher: asyncio.Task[None] | None = None
        # Board writes per job, chained so its events arrive in order.
        self._writes: dict[str, asyncio.Task[None]] = {}

    def submit(
        self, pipeline: Pipeline, username: str | None, work: Work, source: Source = Source.JOB
    ) -> Job:
        """A job of this replica only (the command line's, or any without a board)."""
        self._make_room()
        running = sum(
            1 for job in self._jobs.values() if job.username == username and not job.status.finished
        )
        if running >= self._per_user:
            raise self._too_many()
        return self._launch(Job(pipeline, username, self._clock.now(), source), work)

    async def submit_shared(
        self, pipeline: Pipeline, username: str | None, work: Work, source: Source = Source.JOB
    ) -> Job:
        """A job every replica sees, the user's allowance counted on all of them."""
        if self._board is None:
            return self.submit(pipeline, username, work, source)
        self._make_room()
        job = Job(pipeline, username, self._clock.now(), source)
        await self._board.admit(self._view(job), self._per_user)
        job.on_event = self._write_event
        return self._launch(job, work)

    def _launch(self, job: Job, work: Work) -> Job:
        self._jobs[job.id] = job
        job._task = asyncio.create_task(self._run(job, work), name=f"job-{job.id}")
        return job

    def _too_many(self) -> TooManyJobs:
        return TooManyJobs(
            f"username: at most {self._per_user} running jobs per user; "
            "wait for one to end or cancel one"
        )

    async def _run(self, job: Job, work: Work) -> None:
        # The job's own task has its own context: its one run takes these.
        run_source.set(job.source)
        planned_generation_id.set(job.generation_id)
        job.status = JobStatus.RUNNING
        if job.on_event is not None and self._board is not None:
            self._chain(job, self._board.running(self._view(job)))
        try:
            result = await work(job.report)
            await self._retain(job, result)
        except asyncio.CancelledError:
            job._end(JobStatus.CANCELLED, self._clock.now())
            return  # the job's own task: nobody else waits for this cancellation
        except Exception as exc:
            if not isinstance(exc, InsPilotError):
                logger.exception("job %s failed unexpectedly", job.id, exc_info=exc)
            job._end(JobStatus.FAILED, self._clock.now(), exc)
            return
        job._end(JobStatus.DONE, self._clock.now())

    async def _retain(self, job: Job, result: PipelineResult) -> None:
        """Keep a done job's result for reading: its pictures in the store (any replica reads
        them as soon as the job says done), its presented form and their references here."""
        job.result = result
        if self._pictures is None or self._present is None:
            return
        try:
            job.pictures = await self._pictures.keep_pictures(pictures_of(result))
        except InsPilotError as exc:  # the record, queued already, is retried on its own
            logger.warning("job %s: pictures kept in memory, the store failed: %s", job.id, exc)
            return
        job.result_view = self._present(job)
        job.result = None

    async def picture(self, job: Job | RemoteJob, step_id: str) -> bytes | None:
        """One picture of a done job, from the store (or from memory, where it stayed)."""
        if job.status is not JobStatus.DONE:
            return None
        ref = job.pictures.get(step_id)
        if ref is not None and self._pictures is not None:
            return await self._pictures.load_picture(ref)
        if isinstance(job, Job) and job.result is not None:
            return pictures_of(job.result).get(step_id)
        return None

    def get(self, job_id: str) -> Job:
        """A job of this replica."""
        self._forget_expired()
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"id: no job '{job_id}' (unknown, or expired)")
        return job

    async def find(self, job_id: str) -> Job | RemoteJob:
        """A job of any replica."""
        self._forget_expired()
        job = self._jobs.get(job_id)
        if job is not None:
            return job
        view = None if self._board is None else await self._board.get(job_id)
        if view is None or self._board is None:
            raise NotFound(f"id: no job '{job_id}' (unknown, or expired)")
        return RemoteJob(view, self._board, self._poll_s)

    async def cancel(self, job_id: str) -> Job | RemoteJob:
        """Cancel a running job and wait until its run has let go of its slots and been
        recorded; a job that has ended is returned as it ended. A job of another replica
        is cancelled by its owner, which polls for such requests."""
        job = await self.find(job_id)
        if isinstance(job, Job):
            await self._stop(job, CANCELLED_BY_CLIENT)
            return job
        assert self._board is not None
        if not job.status.finished:
            await self._board.request_cancel(job_id)
            for _ in range(int(10 / self._poll_s)):
                view = await self._board.get(job_id)
                if view is None or view.status.finished:
                    break
                await asyncio.sleep(self._poll_s / 2)
            job = await self.find(job_id)
        return job

    async def _stop(self, job: Job, reason: str) -> None:
        task = job._task
        if task is not None and not task.done():
            task.cancel(reason)
            await asyncio.wait([task])
        # A task cancelled before its first step never ran `_run`.
        job._end(JobStatus.CANCELLED, self._clock.now())

    def _make_room(self) -> None:
        """Below `max_jobs` held: expired jobs go, then the longest-finished ones (their
        records stay in the store); when every held job is running, a new one is 429."""
        self._forget_expired()
        if len(self._jobs) < self._max_jobs:
            return
        finished = sorted(
            (job for job in self._jobs.values() if job.finished_at is not None),
            key=lambda job: job.finished_at or job.created_at,
        )
        for job in finished[: len(self._jobs) - self._max_jobs + 1]:
            del self._jobs[job.id]
        if len(self._jobs) >= self._max_jobs:
            raise TooManyJobs(
                f"jobs: {self._max_jobs} jobs are running on this service, the most it holds "
                "(INSPILOT_MAX_JOBS); try again when one has ended"
            )

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
        if self._board is not None:
            await self._board.start()
            self._watcher = asyncio.create_task(self._watch(), name="jobs-board")

    async def close(self) -> None:
        """At shutdown running jobs are cancelled, so their runs are recorded as such."""
        running = [job for job in self._jobs.values() if not job.status.finished]
        for job in running:
            await self._stop(job, SHUT_DOWN)
        if self._board is None:
            return
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        await asyncio.gather(*self._writes.values(), return_exceptions=True)
        await self._board.close()

    # -- the board: what other replicas see of this one's jobs ---------------------------

    def _view(self, job: Job) -> JobView:
        assert self._board is not None
        result_view = None
        if job.status is JobStatus.DONE and self._present is not None:
            result_view = job.result_view if job.result is None else self._present(job)
        return JobView(
            id=job.id,
            generation_id=job.generation_id,
            pipeline=job.pipeline,
            username=job.username,
            created_at=job.created_at,
            status=job.status,
            replica=self._board.replica,
            finished_at=job.finished_at,
            error=job.error,
            result_view=result_view,
            pictures=dict(job.pictures),
        )

    def _write_event(self, job: Job, event: JobEvent) -> None:
        assert self._board is not None
        seq = len(job.events)
        self._chain(job, self._board.add_event(job.id, seq, event))
        if isinstance(event, JobEnded):
            self._chain(job, self._board.finish(self._view(job)))

    def _chain(self, job: Job, write: Awaitable[None]) -> None:
        """Run `write` after the job's earlier writes: its events stay in order."""
        before = self._writes.get(job.id)

        async def after() -> None:
            if before is not None:
                await asyncio.gather(before, return_exceptions=True)
            try:
                await write
            except Exception as exc:
                logger.warning("job %s: the board missed a write: %s", job.id, exc)

        task = asyncio.create_task(after())
        self._writes[job.id] = task
        task.add_done_callback(lambda done: self._forget_write(job.id, done))

    def _forget_write(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._writes.get(job_id) is task:
            del self._writes[job_id]

    async def _watch(self) -> None:
        """Cancels asked for on other replicas, every `poll_s`; the heartbeat and the
        jobs of replicas that died, every `beat_s`."""
        assert self._board is not None
        next_beat = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                mine = [job.id for job in self._jobs.values() if not job.status.finished]
                if mine:
                    for job_id in await self._board.cancel_requests(mine):
                        await self._stop(self._jobs[job_id], CANCELLED_BY_CLIENT)
                if loop.time() >= next_beat:
                    next_beat = loop.time() + self._beat_s
                    await self._board.beat()
                    for orphan in await self._board.fail_orphans():
                        logger.error("job %s failed: %s", orphan.id, REPLICA_STOPPED)
                        if self._record_orphan is not None:
                            await self._record_orphan(orphan)
            except Exception as exc:  # the watch must go on: cancels and orphans wait on it
                logger.warning("jobs board: %s", exc)
            await asyncio.sleep(self._poll_s)
