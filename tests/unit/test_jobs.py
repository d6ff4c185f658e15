"""Progress events from a run, and the job service's life cycle: results, expiry, limits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.generation_run import ModelGateway
from application.jobs import JobService
from application.pipeline import pictures_of
from application.use_cases.rapid_divergence import (
    GenerateRapidDivergence,
    RapidDivergenceCommand,
)
from domain.errors import NotFound, TooManyJobs
from domain.generation import Pipeline
from domain.progress import (
    ImageProgress,
    JobEnded,
    JobStatus,
    ProgressEvent,
    StepProgress,
    StepStatus,
)
from tests.unit.fakes import RecordingTextGenerator


@dataclass
class SettableClock:
    at: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


@dataclass
class Gate:
    """Work that waits until the test opens it."""

    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def work(self, progress: Any) -> str:
        await self.opened.wait()
        return "result"


async def test_a_run_reports_every_attempt_and_picture(
    gateway: ModelGateway, text: RecordingTextGenerator
) -> None:
    text.scripted["products"] = ["只有一个", "杯#碗"]  # the first answer is one item short
    events: list[ProgressEvent] = []
    await GenerateRapidDivergence(gateway).execute(RapidDivergenceCommand("t", 2), events.append)
    products = [e for e in events if isinstance(e, StepProgress) and e.step.endswith("products")]
    assert [(e.status, e.attempt) for e in products] == [
        (StepStatus.STARTED, 1),
        (StepStatus.FAILED, 1),
        (StepStatus.STARTED, 2),
        (StepStatus.FINISHED, 2),
    ]
    assert all(e.seconds is None for e in products if e.status is StepStatus.STARTED)
    assert all(e.seconds == 1.0 for e in products if e.status is not StepStatus.STARTED)
    images = [e for e in events if isinstance(e, ImageProgress)]
    assert images == [ImageProgress(1, 2), ImageProgress(2, 2)]


async def test_a_job_keeps_its_result_until_it_expires() -> None:
    clock = SettableClock()
    jobs = JobService(clock, ttl_s=60, per_user=1)
    gate = Gate()
    job = jobs.submit(Pipeline.RAPID_DIVERGENCE, "u", gate.work)
    await asyncio.sleep(0)
    assert job.status is JobStatus.RUNNING
    gate.opened.set()
    ended = [event async for event in job.follow()]
    assert ended == [JobEnded(JobStatus.DONE)] and job.result == "result"
    clock.at += timedelta(seconds=60)
    assert jobs.get(job.id) is job
    clock.at += timedelta(seconds=1)
    with pytest.raises(NotFound, match="no job"):
        jobs.get(job.id)


async def test_only_running_jobs_count_against_the_limit() -> None:
    jobs = JobService(SettableClock(), ttl_s=60, per_user=1)
    gate = Gate()
    first = jobs.submit(Pipeline.RAPID_DIVERGENCE, None, gate.work)
    with pytest.raises(TooManyJobs):
        jobs.submit(Pipeline.RAPID_DIVERGENCE, None, gate.work)
    jobs.submit(Pipeline.RAPID_DIVERGENCE, "someone", gate.work)
    assert (await jobs.cancel(first.id)).status is JobStatus.CANCELLED
    jobs.submit(Pipeline.RAPID_DIVERGENCE, None, gate.work)
    await jobs.close()
    assert all(job.status is JobStatus.CANCELLED for job in jobs._jobs.values())


async def test_cancelling_a_finished_job_changes_nothing() -> None:
    jobs = JobService(SettableClock(), ttl_s=60, per_user=4)
    gate = Gate()
    gate.opened.set()
    job = jobs.submit(Pipeline.CONVERGE_SELECT, None, gate.work)
    [event async for event in job.follow()]
    assert (await jobs.cancel(job.id)).status is JobStatus.DONE


async def test_the_jobs_held_are_capped_oldest_finished_first() -> None:
    """1,000 usernames can no longer hold 1,000 results (pictures) for the job TTL."""
    clock = SettableClock()
    jobs = JobService(clock, ttl_s=3600, per_user=4, max_jobs=3)
    done = Gate()
    done.opened.set()
    finished = []
    for user in ("a", "b"):
        job = jobs.submit(Pipeline.RAPID_DIVERGENCE, user, done.work)
        [event async for event in job.follow()]
        finished.append(job)
        clock.at += timedelta(seconds=1)
    held = Gate()
    running = [jobs.submit(Pipeline.RAPID_DIVERGENCE, user, held.work) for user in "cd"]
    # Four asked, three held: the longest-finished went first, within the TTL.
    assert len(jobs._jobs) == 3
    with pytest.raises(NotFound):
        jobs.get(finished[0].id)
    assert jobs.get(finished[1].id) is finished[1]
    jobs.submit(Pipeline.RAPID_DIVERGENCE, "e", held.work)
    with pytest.raises(NotFound):
        jobs.get(finished[1].id)
    # All three running: a fourth is refused, naming the setting.
    with pytest.raises(TooManyJobs, match="INSPILOT_MAX_JOBS"):
        jobs.submit(Pipeline.RAPID_DIVERGENCE, "f", held.work)
    held.opened.set()
    for job in running:
        [event async for event in job.follow()]
    await jobs.close()


@dataclass
class PictureShelf:
    """A picture store in a dict; notes whether the job had ended when it was given them."""

    jobs: list[Any] = field(default_factory=list)
    kept: dict[str, bytes] = field(default_factory=dict)
    ended_when_kept: list[bool] = field(default_factory=list)

    async def keep_pictures(self, pictures: Any) -> dict[str, str]:
        self.ended_when_kept.extend(job.status.finished for job in self.jobs)
        refs = {step: f"ref-{step}" for step in pictures}
        self.kept.update({refs[step]: data for step, data in pictures.items()})
        return refs

    async def load_picture(self, ref: str) -> bytes | None:
        return self.kept.get(ref)


async def test_a_done_jobs_pictures_are_in_the_store_not_in_memory(
    gateway: ModelGateway,
) -> None:
    shelf = PictureShelf()
    jobs = JobService(
        SettableClock(), ttl_s=60, per_user=1, pictures=shelf, present=lambda job: "presented"
    )
    use_case = GenerateRapidDivergence(gateway)
    job = jobs.submit(
        Pipeline.RAPID_DIVERGENCE,
        "u",
        lambda progress: use_case.execute(RapidDivergenceCommand("t", 2), progress),
    )
    shelf.jobs.append(job)
    [event async for event in job.follow()]
    assert job.status is JobStatus.DONE
    # Kept before the job said done; only references and the presented form stay here.
    assert shelf.ended_when_kept == [False]
    assert len(shelf.kept) == 2 and all(data for data in shelf.kept.values())
    assert job.result is None and job.result_view == "presented"
    assert set(job.pictures.values()) == set(shelf.kept)
    for step, ref in job.pictures.items():
        assert await jobs.picture(job, step) is shelf.kept[ref]
    assert await jobs.picture(job, "no-such-step") is None
    await jobs.close()


async def test_without_a_store_a_done_job_keeps_its_pictures_readable(
    gateway: ModelGateway,
) -> None:
    jobs = JobService(SettableClock(), ttl_s=60, per_user=1, present=lambda job: "presented")
    use_case = GenerateRapidDivergence(gateway)
    job = jobs.submit(
        Pipeline.RAPID_DIVERGENCE,
        None,
        lambda progress: use_case.execute(RapidDivergenceCommand("t", 1), progress),
    )
    [event async for event in job.follow()]
    assert job.result is not None and not job.pictures
    [(step, data)] = pictures_of(job.result).items()
    assert await jobs.picture(job, step) is data
