"""MongoAccessRecords: dashboard sessions and wrong-token counters in MongoDB, seen by
every worker and replica.

- `dashboard_sessions`: `_id` the hash of the session id (the id itself is never
  stored), `expires_at` (TTL index); deleted at logout.
- `access_failures`: `_id` the client address, `count`, `held_until` (no try before
  it), `keep_until` (TTL index: a day after the last failure).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from adapters.mongo.client import shared_state_client
from adapters.mongo.repository import storage_errors
from application.dashboard_access import AccessRecords
from domain.errors import StorageError

Doc = dict[str, Any]


class MongoAccessRecords(AccessRecords):
    """One worker's view of the shared sessions and counters. Use from one event loop."""

    def __init__(self, uri: Callable[[], str], database: str, *, timeout_ms: int = 5000) -> None:
        self._uri = uri
        self._database = database
        self._timeout_ms = timeout_ms
        self._client: AsyncMongoClient[Doc] | None = None
        self._sessions_coll: AsyncCollection[Doc] | None = None
        self._failures_coll: AsyncCollection[Doc] | None = None

    async def start(self) -> None:
        self._client = shared_state_client(self._uri(), self._timeout_ms)
        db = self._client[self._database]
        self._sessions_coll, self._failures_coll = db["dashboard_sessions"], db["access_failures"]
        with storage_errors("creating the dashboard access indexes"):
            await self._sessions_coll.create_index("expires_at", expireAfterSeconds=0)
            await self._failures_coll.create_index("keep_until", expireAfterSeconds=0)

    async def close(self) -> None:
        client, self._client = self._client, None
        self._sessions_coll = self._failures_coll = None
        if client is not None:
            await client.close()

    @property
    def _sessions(self) -> AsyncCollection[Doc]:
        if self._sessions_coll is None:
            raise StorageError("storage: dashboard sessions are not started")
        return self._sessions_coll

    @property
    def _failures(self) -> AsyncCollection[Doc]:
        if self._failures_coll is None:
            raise StorageError("storage: dashboard sessions are not started")
        return self._failures_coll

    # -- sessions ------------------------------------------------------------------------

    async def put_session(self, key: str, expires_at: datetime) -> None:
        with storage_errors("opening a dashboard session"):
            await self._sessions.insert_one({"_id": key, "expires_at": expires_at})

    async def session_expiry(self, key: str) -> datetime | None:
        with storage_errors("reading a dashboard session"):
            doc = await self._sessions.find_one({"_id": key})
        return None if doc is None else doc["expires_at"]

    async def drop_session(self, key: str) -> None:
        with storage_errors("closing a dashboard session"):
            await self._sessions.delete_one({"_id": key})

    # -- wrong tokens --------------------------------------------------------------------

    async def count_failure(self, address: str, now: datetime, keep_until: datetime) -> int:
        """One write when the counter is alive; a counter past `keep_until` (which the TTL
        monitor may not have removed yet) is reset first."""
        with storage_errors("counting a wrong token"):
            doc = await self._failures.find_one_and_update(
                {"_id": address, "keep_until": {"$gt": now}},
                {"$inc": {"count": 1}, "$set": {"keep_until": keep_until}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return int(doc["count"])
            await self._failures.update_one(
                {"_id": address, "keep_until": {"$lte": now}},
                {"$set": {"count": 0, "held_until": None}},
            )
            for attempt in range(2):  # two first failures at once: one upsert wins
                try:
                    doc = await self._failures.find_one_and_update(
                        {"_id": address},
                        {"$inc": {"count": 1}, "$set": {"keep_until": keep_until}},
                        upsert=True,
                        return_document=ReturnDocument.AFTER,
                    )
                    break
                except DuplicateKeyError:
                    if attempt:
                        raise
            assert doc is not None
            return int(doc["count"])

    async def hold_off(self, address: str, until: datetime) -> None:
        with storage_errors("holding off a client"):
            await self._failures.update_one({"_id": address}, {"$max": {"held_until": until}})

    async def held_until(self, address: str) -> datetime | None:
        with storage_errors("reading a client's wrong tokens"):
            doc = await self._failures.find_one({"_id": address}, {"held_until": 1})
        return None if doc is None else doc.get("held_until")

    async def forgive(self, address: str) -> None:
        with storage_errors("forgetting a client's wrong tokens"):
            await self._failures.delete_one({"_id": address})
