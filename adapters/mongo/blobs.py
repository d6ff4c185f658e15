"""GridFS as a blob store: concurrent uploads and downloads, batch deletes, orphan listing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.errors import CorruptGridFile, NoFile
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.mapping import Blob

T = TypeVar("T")
R = TypeVar("R")

BUCKET = "fs"
# A load races at most a few writes that each remove the files it was about to read.
LOAD_ATTEMPTS = 5
# Enough requests in flight to hide round trips without flooding a small server.
DEFAULT_CONCURRENCY = 8


class BlobMissing(Exception):
    """A referenced file is gone: a newer save replaced the document we read (so read again)."""


class BlobStore:
    def __init__(self, db: AsyncDatabase[Any], concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)
        self._files = db[f"{BUCKET}.files"]
        self._chunks = db[f"{BUCKET}.chunks"]
        self._concurrency = concurrency

    async def _bounded(self, func: Callable[[T], Awaitable[R]], items: Iterable[T]) -> list[R]:
        # Bounded per call, not per store: one participant's 100 MB load must not make
        # every other request queue behind it (the client's pool still caps connections).
        semaphore = asyncio.Semaphore(self._concurrency)

        async def one(item: T) -> R:
            async with semaphore:
                return await func(item)

        return list(await asyncio.gather(*(one(item) for item in items)))

    async def create_indexes(self) -> None:
        # Orphan collection scans by age.
        await self._files.create_index("uploadDate")

    async def upload(
        self, blobs: Collection[Blob], metadata: Mapping[str, Any]
    ) -> dict[str, ObjectId]:
        """Uploads every blob; returns sha -> file id. Tagged so orphans can be traced."""

        async def one(blob: Blob) -> ObjectId:
            return await self._bucket.upload_from_stream(
                f"{blob.kind}/{blob.sha}",
                blob.data,
                metadata={**metadata, "kind": blob.kind, "sha256": blob.sha},
            )

        ids = await self._bounded(one, blobs)
        return {blob.sha: file_id for blob, file_id in zip(blobs, ids, strict=True)}

    async def download(self, file_ids: Iterable[ObjectId]) -> dict[ObjectId, bytes]:
        async def one(file_id: ObjectId) -> bytes:
            try:
                stream = await self._bucket.open_download_stream(file_id)
                return await stream.read()
            except (NoFile, CorruptGridFile) as exc:
                raise BlobMissing(str(file_id)) from exc

        unique = list(dict.fromkeys(file_ids))
        return dict(zip(unique, await self._bounded(one, unique), strict=True))

    async def delete(self, file_ids: Iterable[ObjectId]) -> None:
        """Two round trips whatever the count. Chunks go first: if we stop half-way, what
        is left is a file document without a reference, which orphan collection finds."""
        ids = list(set(file_ids))
        if not ids:
            return
        await self._chunks.delete_many({"files_id": {"$in": ids}})
        await self._files.delete_many({"_id": {"$in": ids}})

    async def uploaded_before(self, cutoff: datetime) -> list[ObjectId]:
        cursor = self._files.find({"uploadDate": {"$lt": cutoff}}, projection={"_id": 1})
        return [document["_id"] async for document in cursor]
