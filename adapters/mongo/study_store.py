"""Attribution lookups and study conditions on MongoDB: each one an indexed query or one
atomic update, so `/generate` never scans and concurrent starts never overfill a condition."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.mongo import mapping
from domain.attribution import Attribution, Evidence
from domain.errors import NotFound
from domain.experiment import ConditionMove

# Optimistic takes of a condition place retried before giving up (each retry means
# another start took a place in between, so this bounds only extreme contention).
PLACE_ATTEMPTS = 50


class StudyStore:
    """`sessions` and `generations` (shared with the repository), `participant_addresses`
    and `condition_places` (one counter document per study and condition)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._sessions: AsyncCollection[dict[str, Any]] = db["sessions"]
        self._generations: AsyncCollection[dict[str, Any]] = db["generations"]
        self._addresses: AsyncCollection[dict[str, Any]] = db["participant_addresses"]
        self._places: AsyncCollection[dict[str, Any]] = db["condition_places"]

    async def create_indexes(self) -> None:
        await self._sessions.create_index("text_keys")
        await self._generations.create_index("evidence.sketches")
        await self._generations.create_index("evidence.texts")
        await self._generations.create_index("evidence.address")
        await self._addresses.create_index([("address", ASCENDING), ("at", ASCENDING)])

    async def _usernames(self, query: dict[str, Any]) -> set[str]:
        cursor = self._sessions.find(query, projection={"username": 1, "_id": 0})
        return {document["username"] async for document in cursor}

    async def participants_with_sketches(self, keys: Collection[str]) -> set[str]:
        # A saved sketch is a blob whose hash is its key, listed in the indexed `blobs`.
        return await self._usernames({"blobs": {"$in": sorted(keys)}}) if keys else set()

    async def participants_with_texts(self, keys: Collection[str]) -> set[str]:
        return await self._usernames({"text_keys": {"$in": sorted(keys)}}) if keys else set()

    async def note_address(self, username: str, address: str, at: datetime) -> None:
        await self._addresses.update_one(
            {"_id": f"{address} {username}"},
            {"$set": {"address": address, "username": username, "at": at}},
            upsert=True,
        )

    async def participants_at_address(self, address: str, since: datetime) -> set[str]:
        cursor = self._addresses.find(
            {"address": address, "at": {"$gte": since}}, projection={"username": 1}
        )
        return {document["username"] async for document in cursor}

    async def unattributed_generations(
        self, since: datetime, evidence: Evidence
    ) -> Sequence[tuple[str, Evidence]]:
        # One query per kind of key, each on its own index (no $or: not every
        # MongoDB-wire server plans it on indexes).
        clauses: list[dict[str, Any]] = []
        if evidence.sketches:
            clauses.append({"evidence.sketches": {"$in": sorted(evidence.sketches)}})
        if evidence.texts:
            clauses.append({"evidence.texts": {"$in": sorted(evidence.texts)}})
        if evidence.address is not None:
            clauses.append({"evidence.address": evidence.address})
        found: dict[str, Evidence] = {}
        for clause in clauses:
            query = {**clause, "username": None, "started_at": {"$gte": since}}
            async for document in self._generations.find(query, projection={"evidence": 1}):
                found[document["_id"]] = mapping.decode_evidence(document.get("evidence"))
        return list(found.items())

    async def attribute_generation(self, record_id: str, attribution: Attribution) -> bool:
        result = await self._generations.update_one(
            {"_id": record_id, "username": None},
            {
                "$set": {
                    "username": attribution.participant,
                    "attributed_by": None if attribution.by is None else attribution.by.value,
                    "attributed_at": attribution.at,
                }
            },
        )
        return result.modified_count == 1

    async def set_condition(self, username: str, condition: str) -> bool:
        result = await self._sessions.update_one(
            {"username": username, "condition": None}, {"$set": {"condition": condition}}
        )
        return result.modified_count == 1

    async def condition_of(self, username: str) -> str | None:
        document = await self._sessions.find_one(
            {"username": username}, projection={"condition": 1, "_id": 0}
        )
        return None if document is None else document.get("condition")

    async def move_condition(self, username: str, move: ConditionMove) -> None:
        result = await self._sessions.update_one(
            {"username": username},
            {
                "$set": {"condition": move.to_condition},
                "$push": {"condition_moves": mapping.encode_move(move)},
            },
        )
        if result.matched_count == 0:
            raise NotFound(f"username: no session for '{username}'")

    async def take_condition_place(self, study: str, conditions: Sequence[str]) -> str:
        """Read the counts, then take the smallest with a compare-and-set on its count:
        counts only grow, so a count still equal to what was read is still the smallest."""
        for _ in range(PLACE_ATTEMPTS):
            ids = [f"{study}/{name}" for name in conditions]
            cursor = self._places.find({"_id": {"$in": ids}}, projection={"count": 1})
            counts = {document["_id"]: document.get("count", 0) async for document in cursor}
            chosen = min(conditions, key=lambda name: counts.get(f"{study}/{name}", 0))
            key = f"{study}/{chosen}"
            seen = counts.get(key)
            try:
                if seen is None:
                    await self._places.insert_one({"_id": key, "count": 1})
                    return chosen
                taken = await self._places.update_one(
                    {"_id": key, "count": seen}, {"$inc": {"count": 1}}
                )
            except DuplicateKeyError:
                continue  # another start created the counter first: read again
            if taken.modified_count == 1:
                return chosen
        raise RuntimeError(f"study {study}: could not take a condition place under contention")

    async def give_back_condition_place(self, study: str, condition: str) -> None:
        await self._places.update_one(
            {"_id": f"{study}/{condition}", "count": {"$gt": 0}}, {"$inc": {"count": -1}}
        )
