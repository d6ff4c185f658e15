"""The job service over a job board (an in-memory fake of the port): what another replica
sees of a job, and that a follower's stream always ends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from application.job_board import JobBoard, JobView, RemoteJob
from application.jobs import JobService
from domain.errors import TooManyJobs
from domain.generation import Pipeline
from domain.progress import ImageProgress, JobEnded, JobEvent, JobStatus


class MemoryBoard(JobBoard):
    def __init__(self, replica: str = "r1") -> None:
        self.replica = replica
        self.jobs: dict[str, JobView] = {}
        self.log: dict[str, list[JobEvent]] = {}
        self.cancels: set[str] = set()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def admit(self, job: JobView, per_user: int) -> None:
        active = [j for j in self.jobs.values() if j.username == job.username]
        if sum(1 for j in active if not j.status.finished) >= per_user:
            raise TooManyJobs("username: too many")
        self.jobs[job.id] = job

    async def running(self, job: JobView) -> None:
        self.jobs[job.id] = replace(self.jobs[job.id], status=JobStatus.RUNNING)

    async def add_event(self, job_id: str, seq: int, event: JobEvent) -> None:
        events = self.log.setdefault(job_id, [])
        assert seq == len(events) + 1, "events out of order"
        events.append(event)

    async def finish(self, job: JobView) -> None:
        self.jobs[job.id] = job

    async def get(self, job_id: str) -> JobView | None:
        return self.jobs.get(job_id)

    async def events(self, job_id: str, after: int) -> Sequence[JobEvent]:
        return self.log.get(job_id, [])[after:]

    async def request_cancel(self, job_id: str) -> None:
        self.cancels.add(job_id)

    async def cancel_requests(self, job_ids: Sequence[str]) -> Sequence[str]:
        return [job_id for job_id in job_ids if job_id in self.cancels]

    async def beat(self) -> None: ...

    async def fail_orphans(self) -> Sequence[JobView]:
        return []


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


async def test_the_board_sees_every_event_in_order_and_the_result() -> None:
    board = MemoryBoard()
    jobs = JobService(Clock(), ttl_s=60, per_user=1, board=board, present=lambda job: "shown")

    async def work(progress: object) -> str:
        for done in (1, 2, 3):
            progress(ImageProgress(done, 3))  # type: ignore[operator]
            await asyncio.sleep(0)
        return "result"

    await jobs.start()
    job = await jobs.submit_shared(Pipeline.RAPID_DIVERGENCE, "u", work)
    events = [event async for event in job.follow()]
    await jobs.close()
    assert board.log[job.id] == events
    assert board.jobs[job.id].status is JobStatus.DONE
    assert board.jobs[job.id].result_view == "shown"


async def test_another_replica_follows_and_cancels_through_the_board() -> None:
    board = MemoryBoard()
    owner = JobService(Clock(), ttl_s=60, per_user=1, board=board, poll_s=0.01)
    other = JobService(Clock(), ttl_s=60, per_user=1, board=board, poll_s=0.01)
    started = asyncio.Event()

    async def work(progress: object) -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    await owner.start()
    job = await owner.submit_shared(Pipeline.RAPID_DIVERGENCE, "u", work)
    await started.wait()
    seen = await other.find(job.id)
    assert isinstance(seen, RemoteJob)
    cancelled = await other.cancel(job.id)
    await owner.close()
    assert cancelled.status is JobStatus.CANCELLED
    assert job.status is JobStatus.CANCELLED
    ending = [event async for event in (await other.find(job.id)).follow()]
    assert isinstance(ending[-1], JobEnded) and ending[-1].status is JobStatus.CANCELLED


async def test_a_follower_of_a_job_gone_from_the_board_stops() -> None:
    board = MemoryBoard()
    view = JobView(
        "j1", "g1", Pipeline.RAPID_DIVERGENCE, "u", Clock().now(), JobStatus.RUNNING, "dead"
    )
    follower = RemoteJob(view, board, poll_s=0.001)  # never on the board: expired
    events = await asyncio.wait_for(_collect(follower), timeout=5)
    assert events == []


async def _collect(job: RemoteJob) -> list[JobEvent]:
    return [event async for event in job.follow()]
