"""Content-addressed blobs: one document per SHA-256, GridFS only past 8 MB, swept by age.

Why not GridFS for everything: on the embedded server GridFS writes slow down with
every file stored (23 MB/s at first, 1.6 MB/s after 1 GB), while one document with a
binary field stays flat (~180 MB/s). A 1.7 MB SDXL picture is one document here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from bson import Binary
from gridfs import AsyncGridFSBucket
from gridfs.errors import CorruptGridFile, NoFile
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from adapters.mongo.mapping import Blob
from application.concurrency import ByteBudget

logger = logging.getLogger(__name__)

COLLECTION = "blobs"
BUCKET = "fs"
# A blob up to this size is one document; larger ones (rare: a scheme with very long
# stroke data) go to GridFS. Comfortably below MongoDB's 16 MB document limit.
DOCUMENT_MAX = 8 * 1024 * 1024
# A load races at most a few saves; see BlobMissing.
LOAD_ATTEMPTS = 5
_DUPLICATE_KEY = 11000
_SWEEP_STATE = "blob-sweep"
_SWEEP_BATCH = 500
# Large-blob downloads in flight per call.
_CONCURRENCY = 8
# Blob bytes in one insert message (pymongo would send up to 48 MB), and in flight to
# the server from this process at once, whoever writes: the embedded server copies each
# message through Python several times over, so 20 concurrent 60 MB saves in 48 MB
# messages drove it far past its cache. Measured in benchmarks/memory_pressure.py.
WRITE_BATCH = 8 * 1024 * 1024
WRITES_IN_FLIGHT = 32 * 1024 * 1024

Referenced = Callable[[list[str]], Awaitable[set[str]]]


class BlobMissing(Exception):
    """A referenced blob is gone: only a bug or a hand-edited database gets here."""


def _now() -> datetime:
    return datetime.now(UTC)


def _batches(blobs: list[Blob], most: int) -> Iterator[list[Blob]]:
    """Consecutive batches of at most `most` bytes (a larger blob goes alone)."""
    batch: list[Blob] = []
    size = 0
    for blob in blobs:
        if batch and size + len(blob.data) > most:
            yield batch
            batch, size = [], 0
        batch.append(blob)
        size += len(blob.data)
    if batch:
        yield batch


class BlobStore:
    """`blobs` documents `{_id: sha256, size, kind, touched_at, data | gridfs}`.

    Writers set `touched_at` on every blob they store or reuse and on every blob a
    document stops referencing; the sweep looks only at blobs touched since its last
    run (and older than a grace period) and deletes those no document references. A
    save that reuses a blob touches it before switching its reference, so a sweep
    running meanwhile sees a recent `touched_at` and keeps it.
    """

    def __init__(self, db: AsyncDatabase[Any], writes_in_flight: int = WRITES_IN_FLIGHT) -> None:
        self._writing = ByteBudget(writes_in_flight)
        self._blobs = db[COLLECTION]
        self._state = db["storage_state"]
        self._bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)

    async def create_indexes(self) -> None:
        await self._blobs.create_index("touched_at")

    async def store(self, blobs: Collection[Blob]) -> None:
        """Every blob stored and touched; content already stored is not sent again."""
        if not blobs:
            return
        unique = {blob.sha: blob for blob in blobs}
        now = _now()
        present = {
            document["_id"]
            async for document in self._blobs.find(
                {"_id": {"$in": list(unique)}}, projection={"_id": 1}
            )
        }
        duplicates = set(present)
        missing = [blob for sha, blob in unique.items() if sha not in present]
        small = [blob for blob in missing if len(blob.data) <= DOCUMENT_MAX]
        large = [blob for blob in missing if len(blob.data) > DOCUMENT_MAX]
        for batch in _batches(small, WRITE_BATCH):
            async with self._writing.hold(sum(len(blob.data) for blob in batch)):
                duplicates |= await self._insert(batch, now)
        for blob in large:
            async with self._writing.hold(len(blob.data)):
                if not await self._store_large(blob, now):
                    duplicates.add(blob.sha)
        if duplicates:
            await self.touch(duplicates)

    async def _insert(self, batch: list[Blob], now: datetime) -> set[str]:
        """One insert message; the shas another writer had stored first."""
        documents = [
            {
                "_id": blob.sha,
                "size": len(blob.data),
                "kind": blob.kind,
                "touched_at": now,
                "data": Binary(blob.data),
            }
            for blob in batch
        ]
        try:
            await self._blobs.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                raise
            # Another writer stored the same content first: theirs is identical.
            return {documents[error["index"]]["_id"] for error in errors}
        return set()

    async def _store_large(self, blob: Blob, now: datetime) -> bool:
        file_id = await self._bucket.upload_from_stream(blob.sha, blob.data)
        try:
            await self._blobs.insert_one(
                {
                    "_id": blob.sha,
                    "size": len(blob.data),
                    "kind": blob.kind,
                    "touched_at": now,
                    "gridfs": file_id,
                }
            )
        except DuplicateKeyError:
            await self._bucket.delete(file_id)
            return False
        return True

    async def touch(self, shas: Iterable[str]) -> None:
        """Mark blobs whose references changed, so the next sweeps look at them."""
        wanted = list(set(shas))
        if wanted:
            await self._blobs.update_many(
                {"_id": {"$in": wanted}}, {"$set": {"touched_at": _now()}}
            )

    async def load(self, shas: Iterable[str]) -> dict[str, bytes]:
        wanted = list(set(shas))
        if not wanted:
            return {}
        found: dict[str, bytes] = {}
        large: list[tuple[str, Any]] = []
        async for document in self._blobs.find({"_id": {"$in": wanted}}):
            if "data" in document:
                found[document["_id"]] = bytes(document["data"])
            else:
                large.append((document["_id"], document["gridfs"]))
        if large:
            semaphore = asyncio.Semaphore(_CONCURRENCY)

            async def one(file_id: Any) -> bytes:
                async with semaphore:
                    try:
                        stream = await self._bucket.open_download_stream(file_id)
                        return await stream.read()
                    except (NoFile, CorruptGridFile) as exc:
                        raise BlobMissing(str(file_id)) from exc

            contents = await asyncio.gather(*(one(file_id) for _, file_id in large))
            found.update(zip((sha for sha, _ in large), contents, strict=True))
        if len(found) != len(wanted):
            raise BlobMissing(", ".join(sorted(set(wanted) - found.keys()))[:200])
        return found

    async def sweep(self, referenced: Referenced, grace_s: float) -> int:
        """Delete blobs touched since the last sweep, older than the grace, unreferenced.

        Only recently touched blobs are read, never the whole store; the watermark moves
        on only once a window has been swept, so a crash sweeps the window again.
        """
        state = await self._state.find_one({"_id": _SWEEP_STATE}) or {}
        since = state.get("watermark") or datetime(1970, 1, 1, tzinfo=UTC)
        cutoff = datetime.fromtimestamp(_now().timestamp() - grace_s, UTC)
        if cutoff <= since:
            return 0
        window = {"touched_at": {"$gte": since, "$lt": cutoff}}
        candidates = [
            document["_id"] async for document in self._blobs.find(window, projection={"_id": 1})
        ]
        deleted = 0
        for start in range(0, len(candidates), _SWEEP_BATCH):
            batch = candidates[start : start + _SWEEP_BATCH]
            orphans = list(set(batch) - await referenced(batch))
            deleted += await self._delete_unless_touched(orphans, cutoff)
        await self._state.update_one(
            {"_id": _SWEEP_STATE}, {"$set": {"watermark": cutoff}}, upsert=True
        )
        if deleted:
            logger.info("storage: swept %d unreferenced blobs", deleted)
        return deleted

    async def _delete_unless_touched(self, shas: list[str], cutoff: datetime) -> int:
        # The touched_at condition loses any race with a writer that reuses the blob now.
        if not shas:
            return 0
        condition = {"_id": {"$in": shas}, "touched_at": {"$lt": cutoff}}
        large = [
            document
            async for document in self._blobs.find(
                {**condition, "gridfs": {"$exists": True}}, projection={"gridfs": 1}
            )
        ]
        deleted = (await self._blobs.delete_many(condition)).deleted_count
        for document in large:
            if await self._blobs.find_one({"_id": document["_id"]}, {"_id": 1}) is None:
                try:
                    await self._bucket.delete(document["gridfs"])
                except NoFile:
                    pass
        return deleted
