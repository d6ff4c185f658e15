"""MongoJobBoard: jobs and their events in MongoDB, seen by every replica.

- `jobs`: one document per job (status, owner replica, user, times, error, the
  presented result and its pictures' blob references once done, `cancel` when another
  replica asked for it); removed by
  a TTL index `job_ttl_s` after the job ended.
- `job_events`: one document per event (`job`, `seq`), removed by a TTL index.
- `job_replicas`: a heartbeat per replica; a replica that stopped beating for
  `lease_s` has its running jobs marked failed by another.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import DuplicateKeyError

import domain.errors
from adapters.mongo.client import shared_state_client
from application.job_board import REPLICA_STOPPED, JobBoard, JobView, ReplicaStopped
from domain.errors import InsPilotError, TooManyJobs
from domain.generation import Pipeline
from domain.progress import (
    ImageProgress,
    JobEnded,
    JobEvent,
    JobStatus,
    StepProgress,
    StepStatus,
)

Doc = dict[str, Any]
_ACTIVE = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]
# Events outlive their job's document by this much at most (a run takes minutes).
_EVENTS_KEPT = timedelta(hours=2)


class MongoJobBoard(JobBoard):
    """One replica's view of the shared jobs. Use from one event loop."""

    def __init__(
        self,
        uri: Callable[[], str],
        database: str,
        *,
        ttl_s: float,
        lease_s: float = 15.0,
        timeout_ms: int = 5000,
        replica: str | None = None,
    ) -> None:
        self._uri = uri
        self._database = database
        self._ttl = timedelta(seconds=ttl_s)
        self._lease = timedelta(seconds=lease_s)
        self._timeout_ms = timeout_ms
        self.replica = replica or secrets.token_hex(6)
        self._client: AsyncMongoClient[Doc] | None = None

    async def start(self) -> None:
        self._client = shared_state_client(self._uri(), self._timeout_ms)
        db = self._client[self._database]
        self._jobs, self._events = db["jobs"], db["job_events"]
        self._replicas = db["job_replicas"]
        await self._jobs.create_index("expires_at", expireAfterSeconds=0)
        await self._jobs.create_index([("username", ASCENDING), ("status", ASCENDING)])
        await self._events.create_index([("job", ASCENDING), ("seq", ASCENDING)], unique=True)
        await self._events.create_index("expires_at", expireAfterSeconds=0)
        await self.beat()

    async def close(self) -> None:
        if self._client is not None:
            await self._replicas.delete_one({"_id": self.replica})
            await self._client.close()
            self._client = None

    # -- the owner's writes ------------------------------------------------------------

    async def admit(self, job: JobView, per_user: int) -> None:
        """Insert first, then count: two replicas admitting at once both see both jobs, so
        neither user allowance is exceeded (at worst both are refused)."""
        await self._jobs.insert_one({**_job_doc(job), "expires_at": None, "cancel": False})
        ahead = await self._jobs.count_documents(
            {
                "username": job.username,
                "status": {"$in": _ACTIVE},
                "created_at": {"$lte": job.created_at},
            }
        )
        if ahead > per_user:
            await self._jobs.delete_one({"_id": job.id})
            raise TooManyJobs(
                f"username: at most {per_user} running jobs per user; "
                "wait for one to end or cancel one"
            )

    async def running(self, job: JobView) -> None:
        await self._jobs.update_one(
            {"_id": job.id, "status": JobStatus.QUEUED.value},
            {"$set": {"status": JobStatus.RUNNING.value}},
        )

    async def add_event(self, job_id: str, seq: int, event: JobEvent) -> None:
        doc = {"job": job_id, "seq": seq, "expires_at": _now() + self._ttl + _EVENTS_KEPT}
        try:
            await self._events.insert_one({**doc, **_event_doc(event)})
        except DuplicateKeyError:
            pass  # a replica that marked the job failed wrote its end first

    async def finish(self, job: JobView) -> None:
        assert job.finished_at is not None
        await self._jobs.update_one(
            {"_id": job.id, "status": {"$in": _ACTIVE}},
            {"$set": {**_job_doc(job), "expires_at": job.finished_at + self._ttl}},
        )

    # -- any replica's reads -----------------------------------------------------------

    async def get(self, job_id: str) -> JobView | None:
        doc = await self._jobs.find_one({"_id": job_id})
        return None if doc is None else _view(doc)

    async def events(self, job_id: str, after: int) -> Sequence[JobEvent]:
        found = self._events.find({"job": job_id, "seq": {"$gt": after}}).sort("seq", ASCENDING)
        return [_event(doc) async for doc in found]

    async def request_cancel(self, job_id: str) -> None:
        await self._jobs.update_one(
            {"_id": job_id, "status": {"$in": _ACTIVE}}, {"$set": {"cancel": True}}
        )

    async def cancel_requests(self, job_ids: Sequence[str]) -> Sequence[str]:
        found = self._jobs.find({"_id": {"$in": list(job_ids)}, "cancel": True}, {"_id": 1})
        return [str(doc["_id"]) async for doc in found]

    # -- replicas ----------------------------------------------------------------------

    async def beat(self) -> None:
        await self._replicas.update_one(
            {"_id": self.replica}, {"$set": {"alive_until": _now() + self._lease}}, upsert=True
        )

    async def fail_orphans(self) -> Sequence[JobView]:
        now = _now()
        dead = [doc["_id"] async for doc in self._replicas.find({"alive_until": {"$lt": now}})]
        failed: list[JobView] = []
        for replica in dead:
            async for doc in self._jobs.find({"replica": replica, "status": {"$in": _ACTIVE}}):
                if await self._fail(doc, now):
                    failed.append(_view({**doc, **_failure(now)}))
            await self._replicas.delete_one({"_id": replica, "alive_until": {"$lt": now}})
        return failed

    async def _fail(self, doc: Doc, now: datetime) -> bool:
        """Mark one orphan failed (once, whichever replica gets there first)."""
        result = await self._jobs.update_one(
            {"_id": doc["_id"], "status": {"$in": _ACTIVE}},
            {"$set": {**_failure(now), "expires_at": now + self._ttl}},
        )
        if result.modified_count != 1:
            return False
        last = await self._events.find_one({"job": doc["_id"]}, sort=[("seq", -1)])
        ended = JobEnded(JobStatus.FAILED, ReplicaStopped(REPLICA_STOPPED))
        await self.add_event(doc["_id"], (last["seq"] if last else 0) + 1, ended)
        return True


def _now() -> datetime:
    return datetime.now(UTC)


def _failure(now: datetime) -> Doc:
    return {
        "status": JobStatus.FAILED.value,
        "finished_at": now,
        "error": {"type": ReplicaStopped.__name__, "message": REPLICA_STOPPED},
    }


def _job_doc(job: JobView) -> Doc:
    return {
        "_id": job.id,
        "generation_id": job.generation_id,
        "pipeline": job.pipeline.value,
        "username": job.username,
        "created_at": job.created_at,
        "status": job.status.value,
        "replica": job.replica,
        "finished_at": job.finished_at,
        "error": _error_doc(job.error),
        "result": job.result_view,
        # A list, not a document: step ids are data, never field names.
        "pictures": [{"step": step, "ref": ref} for step, ref in job.pictures.items()],
    }


def _view(doc: Doc) -> JobView:
    return JobView(
        id=doc["_id"],
        generation_id=doc["generation_id"],
        pipeline=Pipeline(doc["pipeline"]),
        username=doc["username"],
        created_at=doc["created_at"],
        status=JobStatus(doc["status"]),
        replica=doc["replica"],
        finished_at=doc.get("finished_at"),
        error=_error(doc.get("error")),
        result_view=doc.get("result"),
        pictures={item["step"]: item["ref"] for item in doc.get("pictures") or ()},
    )


def _error_doc(error: BaseException | None) -> Doc | None:
    if error is None:
        return None
    message = error.message if isinstance(error, InsPilotError) else "internal error"
    return {"type": type(error).__name__, "message": message}


def _error(doc: Doc | None) -> BaseException | None:
    """The error again, as its own class where that takes just a message (most do)."""
    if doc is None:
        return None
    if doc["type"] == ReplicaStopped.__name__:
        return ReplicaStopped(doc["message"])
    kind = getattr(domain.errors, doc["type"], None)
    if isinstance(kind, type) and issubclass(kind, InsPilotError):
        try:
            return kind(doc["message"])
        except TypeError:
            pass
    return InsPilotError(doc["message"])


def _event_doc(event: JobEvent) -> Doc:
    if isinstance(event, StepProgress):
        return {
            "kind": "step",
            "step": event.step,
            "status": event.status.value,
            "attempt": event.attempt,
            "seconds": event.seconds,
        }
    if isinstance(event, ImageProgress):
        return {"kind": "image", "done": event.done, "total": event.total}
    return {"kind": "ended", "status": event.status.value, "error": _error_doc(event.error)}


def _event(doc: Doc) -> JobEvent:
    if doc["kind"] == "step":
        return StepProgress(doc["step"], StepStatus(doc["status"]), doc["attempt"], doc["seconds"])
    if doc["kind"] == "image":
        return ImageProgress(doc["done"], doc["total"])
    return JobEnded(JobStatus(doc["status"]), _error(doc.get("error")))
