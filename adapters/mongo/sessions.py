"""Session documents: whole saves by one reference switch, last started save wins."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from adapters.mongo import mapping
from adapters.mongo.blobs import LOAD_ATTEMPTS, BlobMissing, BlobStore
from domain.errors import NotFound, StorageError
from domain.experiment import Experiment
from domain.timeline import SAVE_MARKS_KEPT, SaveMark

logger = logging.getLogger(__name__)

# Sessions with less inline JSON than this are decoded on the event loop.
SMALL_SESSION_BYTES = 64 * 1024


def _not_started(username: str) -> NotFound:
    return NotFound(f"username: no session for '{username}', call /paint/start first")


class SessionStore:
    """The `sessions` collection; sketches and large schemes live in the blob store.

    A save stores its blobs (content already stored is only touched, so an autosave
    sends just the sketches that changed), then switches every reference with one
    conditional document update. Every save draws a ticket (`save_seq`) when it starts;
    the document's `revision` is the ticket of the save it holds, and a save never
    replaces a higher revision: of concurrent saves, the last one started wins, whole.
    Blobs the switch stopped referencing are touched, for the sweep to judge later.
    """

    def __init__(self, sessions: AsyncCollection[dict[str, Any]], blobs: BlobStore) -> None:
        self._sessions = sessions
        self._blobs = blobs

    async def save_marks(self, username: str) -> list[SaveMark]:
        document = await self._sessions.find_one({"username": username}, {"saves": 1})
        return mapping.decode_save_marks(document.get("saves", []) if document else [])

    async def get(self, username: str) -> Experiment | None:
        for _ in range(LOAD_ATTEMPTS):
            document = await self._sessions.find_one({"username": username}, {"saves": 0})
            if document is None:
                return None
            try:
                files = await self._blobs.load(mapping.blob_hashes(document))
            except BlobMissing:
                continue
            if not files and mapping.inline_size(document) < SMALL_SESSION_BYTES:
                # A new or sketch-less session: a thread hop would cost more than decoding.
                return mapping.decode_session(document, files)
            # Decoding megabytes of JSON and text would stall every other request.
            return await asyncio.to_thread(mapping.decode_session, document, files)
        raise StorageError(f"storage: the session of '{username}' references missing sketches")

    async def get_or_create(self, experiment: Experiment) -> Experiment:
        existing = await self.get(experiment.username)
        if existing is not None:
            return existing
        document, plan = await asyncio.to_thread(mapping.new_session_document, experiment)
        await self._blobs.store(plan.blobs.values())
        document["blobs"] = plan.hashes
        try:
            await self._sessions.insert_one(document)
        except DuplicateKeyError:
            # Another request started the same participant first: theirs is the session.
            stored = await self.get(experiment.username)
            if stored is None:
                raise
            return stored
        return experiment

    async def save(self, experiment: Experiment) -> None:
        username = experiment.username
        # The save is marked as it arrives (a superseded save still happened), in the
        # same update that draws its ticket; the list keeps the last SAVE_MARKS_KEPT.
        mark = mapping.encode_save_mark(experiment)
        push = {"saves": {"$each": [mark], "$slice": -SAVE_MARKS_KEPT}}
        current = await self._sessions.find_one_and_update(
            {"username": username},
            {"$inc": {"save_seq": 1}, "$push": push} if mark else {"$inc": {"save_seq": 1}},
            projection={"_id": 1, "save_seq": 1},
            return_document=ReturnDocument.AFTER,
        )
        if current is None:
            raise _not_started(username)
        ticket: int = current["save_seq"]
        state, plan = await asyncio.to_thread(mapping.encode_session_state, experiment)
        await self._blobs.store(plan.blobs.values())
        before = await self._sessions.find_one_and_update(
            {"_id": current["_id"], "revision": {"$lt": ticket}},
            {"$set": {**state, "blobs": plan.hashes, "revision": ticket}},
            projection={"blobs": 1},
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            # A later-started save already stored its whole session: ours is superseded,
            # and the blobs only it stored are left to the sweep.
            if await self._sessions.find_one({"_id": current["_id"]}, {"_id": 1}) is None:
                raise _not_started(username)
            return
        stale = mapping.blob_hashes(before) - set(plan.hashes)
        try:
            await self._blobs.touch(stale)
        except PyMongoError as exc:
            # The save is stored; untouched stale blobs only take disk space.
            logger.warning("storage: %d replaced blobs left unmarked: %s", len(stale), exc)
