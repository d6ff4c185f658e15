"""MongoDB experiment repository: sessions of any size, saved whole, on pymongo's async API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from bson.errors import BSONError
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from adapters.mongo import mapping
from adapters.mongo.blobs import LOAD_ATTEMPTS, BlobMissing, BlobStore
from adapters.mongo.research_queries import (
    chosen_record_ids,
    chosen_usernames,
    participant_summaries,
)
from adapters.mongo.sessions import SessionStore
from adapters.mongo.study_store import StudyStore
from application.ports import (
    ExperimentRepository,
    ParticipantSummary,
    PictureStore,
    StorageProbe,
    StudyFilter,
)
from domain.attribution import Attribution, Evidence
from domain.errors import StorageError
from domain.experiment import ConditionMove, Experiment
from domain.generation import GenerationRecord
from domain.images import image_sha256
from domain.timeline import SaveMark

logger = logging.getLogger(__name__)

# The first sweep waits until start-up traffic has settled; then one an hour.
SWEEP_DELAY_S = 30.0
SWEEP_INTERVAL_S = 3600.0
HEALTH_COLLECTION = "health"


def redact(uri: str) -> str:
    """The URI without user and password, fit for error messages and logs."""
    return re.sub(r"//[^@/]*@", "//", uri)


@contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Driver and BSON errors become StorageError; nothing from pymongo escapes the adapter.

    The client's message names the part and the action only: the driver's text (server
    addresses, topology dumps) goes to the log, where the request id ties it to the call.
    """
    try:
        yield
    except (PyMongoError, BSONError) as exc:
        logger.warning("storage: %s failed: %s: %s", action, type(exc).__name__, exc)
        raise StorageError(f"storage: {action} failed") from exc


class MongoExperimentRepository(ExperimentRepository, StorageProbe, PictureStore):
    """Sessions in `sessions`, records in `generations`, pictures, sketches and large JSON
    as content-addressed blobs (blobs.py).

    No I/O in __init__: `start()` creates the client on the running event loop, because
    a pymongo async client must never be used across event loops.
    """

    def __init__(
        self,
        uri: str,
        database: str = "inspilot",
        timeout_ms: int = 5000,
        *,
        orphan_grace: timedelta = timedelta(minutes=10),
        sweep_delay_s: float = SWEEP_DELAY_S,
    ) -> None:
        self._uri = uri
        self._database = database
        self._timeout_ms = timeout_ms
        self._orphan_grace = orphan_grace
        self._sweep_delay_s = sweep_delay_s
        self._sweeper: asyncio.Task[None] | None = None
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._db: AsyncDatabase[dict[str, Any]] | None = None
        self._blob_store: BlobStore | None = None
        self._session_store: SessionStore | None = None
        self._study_store: StudyStore | None = None

    @property
    def uri(self) -> str:
        """The server's address (the embedded server's is known once it started)."""
        return self._uri

    def _client_options(self) -> dict[str, Any]:
        # Options spelled in the URI win: keyword arguments would silently override them.
        query = self._uri.partition("?")[2].lower()
        options: dict[str, Any] = {"tz_aware": True}
        for name in ("connectTimeoutMS", "serverSelectionTimeoutMS"):
            if f"{name.lower()}=" not in query:
                options[name] = self._timeout_ms
        return options

    async def start(self) -> None:
        """Connect, check the server answers and create indexes; the sweep runs later."""
        if self._client is not None:
            return
        try:
            self._client = AsyncMongoClient(self._uri, **self._client_options())
            self._db = self._client[self._database]
            await self._db.command("ping")
        except (PyMongoError, BSONError) as exc:
            await self.close()
            raise StorageError(
                f"storage: cannot reach MongoDB at {redact(self._uri)}: {exc}"
            ) from exc
        self._blob_store = BlobStore(self._db)
        self._session_store = SessionStore(self._db["sessions"], self._blob_store)
        self._study_store = StudyStore(self._db)
        try:
            with storage_errors("creating indexes"):
                await self._sessions.create_index("username", unique=True)
                await self._sessions.create_index("blobs")
                await self._generations.create_index(
                    [("username", ASCENDING), ("started_at", DESCENDING)]
                )
                await self._generations.create_index([("started_at", DESCENDING)])
                await self._generations.create_index("blobs")
                await self._blob_store.create_indexes()
                await self._study_store.create_indexes()
        except BaseException:
            await self.close()
            raise
        self._sweeper = asyncio.create_task(self._sweep_periodically(), name="blob-sweep")

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        client, self._client, self._db = self._client, None, None
        self._blob_store = self._session_store = None
        self._study_store = None
        if client is not None:
            await client.close()

    async def _sweep_periodically(self) -> None:
        """Off the start-up path: readiness never waits for a sweep."""
        delay = self._sweep_delay_s
        while True:
            await asyncio.sleep(delay)
            delay = SWEEP_INTERVAL_S
            try:
                await self.collect_orphans()
            except StorageError as exc:
                logger.warning("%s (tried again in an hour)", exc.message)

    @property
    def _database_handle(self) -> AsyncDatabase[dict[str, Any]]:
        if self._db is None:
            raise StorageError("storage: the MongoDB repository is not started")
        return self._db

    @property
    def _sessions(self) -> AsyncCollection[dict[str, Any]]:
        return self._database_handle["sessions"]

    @property
    def _generations(self) -> AsyncCollection[dict[str, Any]]:
        return self._database_handle["generations"]

    @property
    def _blobs(self) -> BlobStore:
        if self._blob_store is None:
            raise StorageError("storage: the MongoDB repository is not started")
        return self._blob_store

    @property
    def _session_records(self) -> SessionStore:
        if self._session_store is None:
            raise StorageError("storage: the MongoDB repository is not started")
        return self._session_store

    @property
    def _study(self) -> StudyStore:
        if self._study_store is None:
            raise StorageError("storage: the MongoDB repository is not started")
        return self._study_store

    async def round_trip(self) -> None:
        """A tiny write read back, in its own collection: never touches study data.

        Each probe writes a document of its own: the supervisor and readiness probe at
        the same moment, and on one shared document one's write replaced the other's
        before its read (a false "did not read back")."""
        marker = secrets.token_hex(8)
        with storage_errors("the health write and read"):
            health = self._database_handle[HEALTH_COLLECTION]
            await health.insert_one({"_id": marker})
            found = await health.find_one({"_id": marker})
            await health.delete_one({"_id": marker})
        if found is None:
            raise StorageError("storage: the health write did not read back")

    async def get_or_create(self, experiment: Experiment) -> Experiment:
        with storage_errors(f"starting the session of '{experiment.username}'"):
            return await self._session_records.get_or_create(experiment)

    async def get(self, username: str) -> Experiment | None:
        with storage_errors(f"loading the session of '{username}'"):
            return await self._session_records.get(username)

    async def save(self, experiment: Experiment) -> None:
        with storage_errors(f"saving the session of '{experiment.username}'"):
            await self._session_records.save(experiment)

    async def save_marks(self, username: str) -> Sequence[SaveMark]:
        with storage_errors(f"loading the saves of '{username}'"):
            return await self._session_records.save_marks(username)

    async def add_generation(self, record: GenerationRecord) -> None:
        blobs = self._blobs
        with storage_errors(f"storing generation record {record.id}"):
            document, plan = await asyncio.to_thread(mapping.encode_generation, record)
            await blobs.store(plan.blobs.values())
            document["blobs"] = plan.hashes
            # Upsert, not insert: the same id stored again replaces the record, as in memory.
            before = await self._generations.find_one_and_replace(
                {"_id": record.id},
                document,
                upsert=True,
                projection={"blobs": 1},
                return_document=ReturnDocument.BEFORE,
            )
            if before is not None:
                await blobs.touch(mapping.blob_hashes(before) - set(plan.hashes))

    async def get_generation(
        self, record_id: str, *, with_images: bool = True
    ) -> GenerationRecord | None:
        with storage_errors(f"loading generation record {record_id}"):
            records = await self._load_generations(
                {"_id": record_id}, limit=1, with_images=with_images
            )
            return records[0] if records else None

    async def list_generations(
        self,
        username: str | None = None,
        limit: int = 100,
        *,
        with_images: bool = True,
        condition: str | None = None,
    ) -> Sequence[GenerationRecord]:
        if limit <= 0:
            # MongoDB reads limit 0 as "no limit".
            return []
        query: dict[str, Any] = {} if username is None else {"username": username}
        if condition is not None:
            query["condition"] = condition
        with storage_errors("listing generation records"):
            return await self._load_generations(query, limit, with_images=with_images)

    async def get_image(self, record_id: str, step_id: str) -> bytes | None:
        with storage_errors(f"loading image {step_id} of generation record {record_id}"):
            document = await self._generations.find_one(
                {"_id": record_id}, projection={"image_steps": 1}
            )
            step = next(
                (s for s in (document or {}).get("image_steps", []) if s.get("id") == step_id),
                None,
            )
            if step is None or not step.get("image"):
                return None
            ref = step["image"]
            if "b" in ref:
                return bytes(ref["b"])
            try:
                files = await self._blobs.load([ref["h"]])
            except BlobMissing:
                return None
            return files[ref["h"]]

    async def keep_pictures(self, pictures: Mapping[str, bytes]) -> dict[str, str]:
        """As blobs of the kind and hash a record's pictures get: the record reuses them."""
        blobs = {
            step: mapping.Blob(data, image_sha256(data), mapping.GENERATION_IMAGE)
            for step, data in pictures.items()
        }
        with storage_errors("keeping a job's pictures"):
            await self._blobs.store(blobs.values())
        return {step: blob.sha for step, blob in blobs.items()}

    async def load_picture(self, ref: str) -> bytes | None:
        with storage_errors(f"loading picture {ref}"):
            try:
                return (await self._blobs.load([ref]))[ref]
            except BlobMissing:
                return None

    async def list_participants(self) -> Sequence[ParticipantSummary]:
        with storage_errors("listing participants"):
            return await participant_summaries(self._sessions, self._generations)

    async def iter_sessions(self, study: StudyFilter) -> AsyncIterator[Experiment]:
        with storage_errors("choosing sessions"):
            usernames = await chosen_usernames(self._sessions, study)
        for username in usernames:
            experiment = await self.get(username)
            if experiment is not None:  # deleted meanwhile
                yield experiment

    async def iter_generations(self, study: StudyFilter) -> AsyncIterator[GenerationRecord]:
        with storage_errors("choosing generation records"):
            record_ids = await chosen_record_ids(self._generations, study)
        for record_id in record_ids:
            record = await self.get_generation(record_id, with_images=False)
            if record is not None:
                yield record

    async def _load_generations(
        self, query: Mapping[str, Any], limit: int, *, with_images: bool = True
    ) -> list[GenerationRecord]:
        for _ in range(LOAD_ATTEMPTS):
            cursor = self._generations.find(query).sort("started_at", DESCENDING).limit(limit)
            documents = await cursor.to_list()
            if not with_images:
                documents = [mapping.without_images(document) for document in documents]
            wanted = set().union(*(mapping.blob_hashes(d) for d in documents))
            try:
                files = await self._blobs.load(wanted)
            except BlobMissing:
                continue
            return [mapping.decode_generation(d, files) for d in documents]
        raise StorageError("storage: generation records kept changing while being read")

    async def _referenced(self, candidates: list[str]) -> set[str]:
        # Not distinct("blobs"): SecantusDB 0.7.0b3 answers [] for some array paths,
        # which would make every blob look orphaned.
        query = {"blobs": {"$in": candidates}}
        wanted = set(candidates)
        referenced: set[str] = set()
        for collection in (self._sessions, self._generations):
            async for document in collection.find(query, projection={"blobs": 1}):
                referenced |= mapping.blob_hashes(document) & wanted
        return referenced

    async def collect_orphans(self) -> int:
        """Deletes blobs no document references any more (replaced sketches, saves that
        stopped half-way), once they are older than the grace period."""
        with storage_errors("sweeping unreferenced blobs"):
            return await self._blobs.sweep(self._referenced, self._orphan_grace.total_seconds())

    # -- attribution and study conditions (study_store.py) --------------------------------

    async def participants_with_sketches(self, keys: Collection[str]) -> set[str]:
        with storage_errors("looking up sketches"):
            return await self._study.participants_with_sketches(keys)

    async def participants_with_texts(self, keys: Collection[str]) -> set[str]:
        with storage_errors("looking up notes"):
            return await self._study.participants_with_texts(keys)

    async def note_address(self, username: str, address: str, at: datetime) -> None:
        with storage_errors("noting a participant's address"):
            await self._study.note_address(username, address, at)

    async def participants_at_address(self, address: str, since: datetime) -> set[str]:
        with storage_errors("looking up an address"):
            return await self._study.participants_at_address(address, since)

    async def unattributed_generations(
        self, since: datetime, evidence: Evidence
    ) -> Sequence[tuple[str, Evidence]]:
        with storage_errors("looking up unattributed generations"):
            return await self._study.unattributed_generations(since, evidence)

    async def attribute_generation(self, record_id: str, attribution: Attribution) -> bool:
        with storage_errors(f"attributing generation record {record_id}"):
            return await self._study.attribute_generation(record_id, attribution)

    async def set_condition(self, username: str, condition: str) -> bool:
        with storage_errors(f"setting the condition of '{username}'"):
            return await self._study.set_condition(username, condition)

    async def condition_of(self, username: str) -> str | None:
        with storage_errors(f"reading the condition of '{username}'"):
            return await self._study.condition_of(username)

    async def move_condition(self, username: str, move: ConditionMove) -> None:
        with storage_errors(f"moving '{username}' to condition {move.to_condition}"):
            await self._study.move_condition(username, move)

    async def take_condition_place(self, study: str, conditions: Sequence[str]) -> str:
        with storage_errors("assigning a condition"):
            return await self._study.take_condition_place(study, conditions)

    async def give_back_condition_place(self, study: str, condition: str) -> None:
        with storage_errors("giving back a condition place"):
            await self._study.give_back_condition_place(study, condition)
