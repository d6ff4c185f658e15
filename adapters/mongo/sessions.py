"""Session documents: whole saves by one reference switch, last started save wins."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from adapters.mongo import mapping
from adapters.mongo.blobs import LOAD_ATTEMPTS, BlobMissing, BlobStore
from domain.errors import NotFound, StorageError
from domain.experiment import Experiment

logger = logging.getLogger(__name__)

_SWITCH_FIELDS = {"_id": 1, "revision": 1, "blobs": 1}


async def forget(blobs: BlobStore, file_ids: Iterable[ObjectId]) -> None:
    """Best-effort delete: a failure only leaves orphans that orphan collection removes."""
    try:
        await blobs.delete(file_ids)
    except PyMongoError as exc:
        logger.warning("storage: files left for orphan collection: %s", exc)


class SessionStore:
    """The `sessions` collection and its GridFS files.

    A save uploads its new files, then switches every reference with one conditional
    document update, then deletes the files the old document referenced. Every save
    draws a ticket (`save_seq`) when it starts; the document's `revision` is the ticket
    of the save it holds, and a save never replaces a higher revision: of concurrent
    saves, the last one started wins, whole. Files whose content is already stored
    (same SHA-256) are reused, so an autosave re-uploads only the sketches that changed.
    """

    def __init__(self, sessions: AsyncCollection[dict[str, Any]], blobs: BlobStore) -> None:
        self._sessions = sessions
        self._blobs = blobs

    async def get(self, username: str) -> Experiment | None:
        for _ in range(LOAD_ATTEMPTS):
            document = await self._sessions.find_one({"username": username})
            if document is None:
                return None
            try:
                files = await self._blobs.download(mapping.file_ids(document))
            except BlobMissing:
                # A save switched references between our two reads; the new document is whole.
                continue
            # Decoding megabytes of JSON and text would stall every other request.
            return await asyncio.to_thread(mapping.decode_session, document, files)
        raise StorageError(f"storage: the session of '{username}' kept changing while being read")

    async def get_or_create(self, experiment: Experiment) -> Experiment:
        existing = await self.get(experiment.username)
        if existing is not None:
            return existing
        document, plan = await asyncio.to_thread(mapping.new_session_document, experiment)
        metadata = {"username": experiment.username, "token": ObjectId()}
        uploaded = await self._blobs.upload(list(plan.blobs.values()), metadata)
        document["blobs"] = plan.attach(uploaded)
        try:
            await self._sessions.insert_one(document)
        except DuplicateKeyError:
            # Another request started the same participant first: theirs is the session.
            await forget(self._blobs, uploaded.values())
            stored = await self.get(experiment.username)
            if stored is None:
                raise
            return stored
        return experiment

    async def save(self, experiment: Experiment) -> None:
        username = experiment.username
        current = await self._sessions.find_one_and_update(
            {"username": username},
            {"$inc": {"save_seq": 1}},
            projection={**_SWITCH_FIELDS, "save_seq": 1},
            return_document=ReturnDocument.AFTER,
        )
        if current is None:
            raise NotFound(f"username: no session for '{username}', call /paint/start first")
        ticket: int = current["save_seq"]
        state, plan = await asyncio.to_thread(mapping.encode_session_state, experiment)
        metadata = {"username": username, "token": ObjectId()}
        uploaded: dict[str, ObjectId] = {}
        stale: set[ObjectId] | None = None
        in_doubt = False
        try:
            while current is not None and current["revision"] < ticket:
                reusable = {blob["h"]: blob["f"] for blob in current.get("blobs", [])}
                known = reusable.keys() | uploaded.keys()
                missing = [blob for blob in plan.blobs.values() if blob.sha not in known]
                uploaded |= await self._blobs.upload(missing, metadata)
                chosen = {sha: reusable.get(sha) or uploaded[sha] for sha in plan.blobs}
                switch = {**state, "blobs": plan.attach(chosen), "revision": ticket}
                # Until the server answers, the switch may or may not have happened.
                in_doubt = True
                before = await self._sessions.find_one_and_update(
                    {"_id": current["_id"], "revision": current["revision"]},
                    {"$set": switch},
                    projection={"blobs": 1},
                    return_document=ReturnDocument.BEFORE,
                )
                in_doubt = False
                if before is not None:
                    replaced = mapping.file_ids(before) | set(uploaded.values())
                    stale = replaced - set(chosen.values())
                    break
                # Another save switched first: plan again against what it stored.
                current = await self._sessions.find_one({"username": username}, _SWITCH_FIELDS)
        except BaseException:
            # Files a switch in doubt may reference are left to orphan collection, which
            # deletes only what no document references.
            if not in_doubt:
                await forget(self._blobs, uploaded.values())
            raise
        if stale is not None:
            await forget(self._blobs, stale)
            return
        # A later-started save already stored its whole session: ours is superseded.
        await forget(self._blobs, uploaded.values())
        if current is None:
            raise NotFound(f"username: no session for '{username}', call /paint/start first")
