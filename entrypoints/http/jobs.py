"""Generation jobs over HTTP (`/api/v1/jobs`): start one, follow its events, read its result.

Open like the legacy `/generate`. Inputs are the pipelines' snake_case inputs; a job's
result is the legacy reply's `data` of its pipeline, with picture URLs in place of base64.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from functools import reduce
from operator import or_
from typing import Any

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Stream
from litestar.response.sse import ServerSentEventMessage

from application.attribution import RunContexts
from application.generation_run import ModelGateway
from application.job_board import RemoteJob
from application.jobs import Job, JobService
from application.use_cases.research import GetGenerationImage
from domain.errors import NotFound
from domain.experiment import Roster, check_username
from domain.images import sniff_image_type
from domain.progress import ImageProgress, JobEvent, JobStatus, StepProgress
from entrypoints.http.bodies import BODY, NO_BODY, JsonBody
from entrypoints.http.envelope import (
    documented,
    envelope,
    envelope_off_loop,
    error_code_and_message,
    reply_schema,
)
from entrypoints.http.free_space import STORES
from entrypoints.pipelines.base import PipelineEntry, limits_of
from entrypoints.pipelines.registry import PIPELINES, by_name
from entrypoints.settings import Settings
from entrypoints.wire import FieldPath, decode_struct

JOBS_PATH = "/api/v1/jobs"
_encoder = msgspec.json.Encoder()


def _job_body(entry: PipelineEntry) -> Any:
    return msgspec.defstruct(
        f"{entry.title}Job",
        [
            ("inputs", entry.inputs),
            ("username", str | None, None),
            ("condition", str | None, None),
        ],
        tag_field="pipeline",
        tag=entry.pipeline.value,
    )


_BODIES = {_job_body(entry): entry for entry in PIPELINES}
JobRequest: Any = reduce(or_, _BODIES)
"""A job's body: `pipeline` says which inputs follow."""


class JobLinks(msgspec.Struct, rename="camel"):
    id: str
    generation_id: str
    status: str
    events_url: str
    result_url: str


class JobError(msgspec.Struct):
    code: int
    message: str


class JobOut(msgspec.Struct, rename="camel"):
    """A job; `result` (once done) is the legacy `data` of its pipeline with picture URLs."""

    id: str
    generation_id: str  # the record's id: `/api/v1/generations/{generationId}`
    pipeline: str
    status: str
    username: str | None
    created_at: str
    finished_at: str | None
    events_url: str
    result_url: str
    result: Any = None
    error: JobError | None = None


JobCreatedReply = reply_schema("JobCreatedReply", JobLinks)
JobReply = reply_schema("JobReply", JobOut)


AnyJob = Job | RemoteJob
"""A job of this replica, or of another one read through the job board."""


def _urls(job: AnyJob) -> tuple[str, str]:
    return f"{JOBS_PATH}/{job.id}/events", f"{JOBS_PATH}/{job.id}"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def present_result(job: Job) -> Any:
    """A done job's result as clients read it, in plain JSON values (for the job board)."""
    return msgspec.to_builtins(_result(job))


def _result(job: Job) -> Any:
    entry = by_name(job.pipeline.value)
    return entry.present(job.result, lambda item: f"{JOBS_PATH}/{job.id}/images/{item.image_id}")


def present_job(job: AnyJob) -> JobOut:
    events_url, result_url = _urls(job)
    result = error = None
    if job.status is JobStatus.DONE:
        # Kept presented (its pictures in the store), or whole where no store took them.
        result = (
            _result(job) if isinstance(job, Job) and job.result is not None else job.result_view
        )
    if job.status is JobStatus.FAILED and job.error is not None:
        error = JobError(*error_code_and_message(job.error))
    return JobOut(
        id=job.id,
        generation_id=job.generation_id,
        pipeline=job.pipeline.value,
        status=job.status.value,
        username=job.username,
        created_at=_time(job.created_at) or "",
        finished_at=_time(job.finished_at),
        events_url=events_url,
        result_url=result_url,
        result=result,
        error=error,
    )


def event_message(job: AnyJob, event: JobEvent) -> tuple[str, dict[str, Any]]:
    """An event's SSE name and data."""
    if isinstance(event, StepProgress):
        return "step", {
            "step": event.step,
            "status": event.status.value,
            "attempt": event.attempt,
            "seconds": event.seconds,
        }
    if isinstance(event, ImageProgress):
        return "image", {"done": event.done, "total": event.total}
    ending = {"generationId": job.generation_id}
    if event.status is JobStatus.DONE:
        return "done", {"resultUrl": _urls(job)[1], **ending}
    if event.status is JobStatus.FAILED and event.error is not None:
        code, message = error_code_and_message(event.error)
        return "failed", {"code": code, "message": message, **ending}
    return "cancelled", ending


_EVENT_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""What Litestar's ServerSentEvent sets: no cache, no proxy buffering."""


async def _stream(job: AnyJob) -> AsyncIterator[bytes]:
    async for event in job.follow():
        name, data = event_message(job, event)
        yield ServerSentEventMessage(data=_encoder.encode(data).decode(), event=name).encode()


def _event_stream(job: AnyJob) -> Stream:
    """The job's events as `text/event-stream`. Not Litestar's ServerSentEvent: it starts
    every stream with a hop to its 40-thread pool, so 5,000 followers arriving at once
    queued each other (and /ping behind them) for seconds."""
    return Stream(_stream(job), media_type="text/event-stream", headers=_EVENT_STREAM_HEADERS)


def _decode_job(body: bytes) -> Any:
    return decode_struct(body, JobRequest)


class JobsController(Controller):
    path = JOBS_PATH
    tags: Sequence[str] | None = ("jobs",)

    @post(
        "/",
        operation_id="createJob",
        status_code=202,
        responses=documented(JobCreatedReply, "the job is queued", 400, 403, 429, 507, status=202),
        opt=STORES,
        **BODY,
    )
    async def create(
        self,
        gateway: NamedDependency[ModelGateway],
        run_contexts: NamedDependency[RunContexts],
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
        roster: NamedDependency[Roster],
        data: JSONBody[JsonBody[JobRequest]] = NO_BODY,
    ) -> Response[bytes]:
        """Start a generation job; follow it at `eventsUrl`, read it at `resultUrl`."""
        body = await data.decode(_decode_job)
        entry = _BODIES[type(body)]
        username = None if body.username is None else check_username(body.username)
        if username is not None:
            roster.check(username)  # 403 now, not a job that fails later
        command = entry.build(body.inputs, limits_of(settings), FieldPath("inputs"), username)
        context = await run_contexts.for_request(
            username=username, evidence=entry.evidence(body.inputs), condition=body.condition
        )
        use_case = entry.use_case(gateway.bound(context))
        job = await jobs.submit_shared(
            entry.pipeline, username, lambda progress: use_case.execute(command, progress)
        )
        events_url, result_url = _urls(job)
        links = JobLinks(job.id, job.generation_id, job.status.value, events_url, result_url)
        return envelope(links, status_code=202)

    @get(
        "/{job_id:str}",
        operation_id="getJob",
        responses=documented(JobReply, "the job, with its result once done", 404),
    )
    async def read(
        self, job_id: FromPath[str], jobs: NamedDependency[JobService]
    ) -> Response[bytes]:
        """The job's status and, once done, its result with picture URLs."""
        return await envelope_off_loop(present_job(await jobs.find(job_id)))

    @delete(
        "/{job_id:str}",
        operation_id="cancelJob",
        status_code=200,
        responses=documented(JobReply, "the job, cancelled", 404),
    )
    async def cancel(
        self, job_id: FromPath[str], jobs: NamedDependency[JobService]
    ) -> Response[bytes]:
        """Cancel a running job: its picture slots are freed before this answers."""
        return envelope(present_job(await jobs.cancel(job_id)))

    @get("/{job_id:str}/events", operation_id="followJob", media_type="text/event-stream")
    async def events(self, job_id: FromPath[str], jobs: NamedDependency[JobService]) -> Stream:
        """Server-Sent Events from the first: `step`, `image`, then one of `done`, `failed`
        or `cancelled`, after which the stream ends."""
        return _event_stream(await jobs.find(job_id))

    @get(
        "/{job_id:str}/images/{step_id:str}",
        operation_id="getJobImage",
        media_type="image/png",
    )
    async def image(
        self,
        job_id: FromPath[str],
        step_id: FromPath[str],
        jobs: NamedDependency[JobService],
        get_generation_image: NamedDependency[GetGenerationImage],
    ) -> Response[bytes]:
        """One picture of a finished job."""
        job = await jobs.find(job_id)
        picture = await jobs.picture(job, step_id)
        if picture is None and isinstance(job, RemoteJob) and job.status is JobStatus.DONE:
            # A replica that kept no references (an older version): its run's record.
            picture = await get_generation_image.execute(job.generation_id, step_id)
        if picture is None:
            raise NotFound(f"image: no image '{step_id}' in job '{job_id}'")
        return Response(bytes(picture), media_type=sniff_image_type(picture) or "image/png")
