"""The shared SD ledger's instance documents in MongoDB, and every read and write made on them.

`sd_instances` holds one document per instance: `slots`, `free`, the `leases` held (`id`,
holder replica, job, `since`, expiry `until`), and the shared health (`healthy`,
`cooldown_until`, `consecutive_failures`, `last_error`, `render_s`, `probe_until`).
The queue and the replicas' documents are in ledger_queue.py.

No query names the instances with `{"_id": {"$in": urls}}`: the embedded server matches
`$in` value by value against every document, and with 200 instances one such query cost
33 ms of its only core (the collapse at scale, measured). Queries filter on `free`
(indexed) instead; an instance in the collection but not configured here (another
deployment's) is excluded by name, and there are seldom any.

Times are wall-clock seconds (`time.time()`): replicas on several hosts compare them,
so their clocks must agree to well within the lease (NTP does).
"""

from __future__ import annotations

import contextlib
import random
import time
from typing import Any

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure

_NO_CHANGE_STREAMS = 40573

Doc = dict[str, Any]
# Instances within this share of the fastest render time count as equally fast.
_EQUAL_SPEED = 0.15


def _fastest(free: list[Doc]) -> Doc:
    """A random one of the fastest free instances (untimed ones count as fastest)."""
    times = [doc["render_s"] for doc in free if doc.get("render_s") is not None]
    if len(times) < len(free):
        return random.choice([doc for doc in free if doc.get("render_s") is None])
    bound = min(times) * (1 + _EQUAL_SPEED)
    return random.choice([doc for doc in free if doc["render_s"] <= bound])


def _fresh(url: str, slots: int) -> Doc:
    return {
        "_id": url,
        "slots": slots,
        "free": slots,
        "leases": [],
        "healthy": False,
        "cooldown_until": 0.0,
        "consecutive_failures": 0,
        "last_error": None,
        "idle_since": 0.0,
        "render_s": None,
        "probe_until": 0.0,
    }


class LedgerDocuments:
    """One replica's handle on the instance documents."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str, replica: str) -> None:
        self.instances = client[database]["sd_instances"]
        self.replica = replica
        # Instances in the collection this replica does not know (another configuration).
        self.foreign: list[str] = []

    async def prepare(self, slots_by_url: dict[str, int]) -> None:
        """The index on `free` and one document per instance (kept if present)."""
        await self.instances.create_index([("free", 1)])
        existing = {doc["_id"]: doc["slots"] async for doc in self.instances.find({}, {"slots": 1})}
        self.foreign = sorted(url for url in existing if url not in slots_by_url)
        missing = [_fresh(url, slots) for url, slots in slots_by_url.items() if url not in existing]
        if missing:
            # Another replica starting at the same moment may insert some of them first.
            with contextlib.suppress(BulkWriteError):
                await self.instances.insert_many(missing, ordered=False)
        for url, old in existing.items():
            if url in slots_by_url and old != slots_by_url[url]:
                # The slots per instance changed since the last deployment: keep the leases.
                await self.instances.update_one(
                    {"_id": url, "slots": old},
                    {
                        "$set": {"slots": slots_by_url[url]},
                        "$inc": {"free": slots_by_url[url] - old},
                    },
                )

    async def has_change_streams(self) -> bool:
        try:
            stream = await self.instances.watch()
        except OperationFailure as exc:
            if exc.code == _NO_CHANGE_STREAMS:
                return False
            raise
        await stream.close()
        return True

    def _ours(self, query: Doc) -> Doc:
        if self.foreign:
            query["_id"] = {"$nin": self.foreign}
        return query

    # -- slots -------------------------------------------------------------------------

    async def take(self, lease: str, job: str, lease_s: float) -> Doc | None:
        """A free slot on a healthy instance, the fastest (a random one among equals).

        Read the free instances (all of them: the first few in index order would be the
        same few for every taker), then take one with an update that re-checks it is
        free. One `find_one_and_update` sorted the same way for every replica made
        concurrent takers all aim at the same document: each lost race re-ran the
        sorted scan, and 100 replicas' takes at once cost seconds each (measured).
        """
        query = self._ours({"free": {"$gt": 0}, "healthy": True})
        while True:
            free = await self.instances.find(query, {"render_s": 1}).to_list()
            if not free:
                return None
            pick = _fastest(free)
            now = time.time()
            taken = await self.instances.update_one(
                {"_id": pick["_id"], "free": {"$gt": 0}, "healthy": True},
                {
                    "$inc": {"free": -1},
                    "$push": {"leases": self._lease(lease, self.replica, job, now, lease_s)},
                },
            )
            if taken.modified_count == 1:
                return pick

    @staticmethod
    def _lease(lease: str, holder: str, job: str, now: float, lease_s: float) -> Doc:
        return {"id": lease, "holder": holder, "job": job, "since": now, "until": now + lease_s}

    async def started(self, url: str, lease: str, render_s: float | None) -> None:
        """When the render on a handed-over slot began, and the instance's render time
        when it changed (both for the scheduling rule, ledger_schedule.py)."""
        fields: Doc = {"leases.$.since": time.time()}
        if render_s is not None:
            fields["render_s"] = render_s
        await self.instances.update_one({"_id": url, "leases.id": lease}, {"$set": fields})

    async def give_back(self, url: str, lease: str, render_s: float | None) -> None:
        fields: Doc = {"idle_since": time.time()}
        if render_s is not None:
            fields["render_s"] = render_s
        # Matching the lease makes a second give-back (or one after a reclaim) a no-op.
        await self.instances.update_one(
            {"_id": url, "leases.id": lease},
            {"$pull": {"leases": {"id": lease}}, "$inc": {"free": 1}, "$set": fields},
        )

    async def renew(self, held: list[tuple[str, str]], lease_s: float) -> None:
        """Every lease this replica holds, in one round trip; a slot handed over by
        another replica is named after its new holder here."""
        if not held:
            return
        until = time.time() + lease_s
        renewals = [
            UpdateOne(
                {"_id": url, "leases.id": lease},
                {"$set": {"leases.$.until": until, "leases.$.holder": self.replica}},
            )
            for url, lease in held
        ]
        await self.instances.bulk_write(renewals, ordered=False)

    async def expired(self, now: float) -> list[tuple[str, Doc]]:
        """Leases of other replicas past their expiry, by instance."""
        found = []
        async for doc in self.instances.find(self._ours({"leases.until": {"$lt": now}})):
            for lease in doc["leases"]:
                if lease["until"] < now and lease["holder"] != self.replica:
                    found.append((str(doc["_id"]), lease))
        return found

    async def reclaim(self, url: str, lease: str, now: float) -> bool:
        """Free an expired lease's slot; False when another replica did it first."""
        result = await self.instances.update_one(
            {"_id": url, "leases": {"$elemMatch": {"id": lease, "until": {"$lt": now}}}},
            {"$pull": {"leases": {"id": lease}}, "$inc": {"free": 1}},
        )
        return result.modified_count == 1

    async def has_free_slot(self) -> bool:
        found = await self.instances.find_one(
            self._ours({"free": {"$gt": 0}, "healthy": True}), {"_id": 1}
        )
        return found is not None

    async def read(self) -> list[Doc]:
        return await self.instances.find(self._ours({})).to_list()

    async def busy_faster_than(self, render_s: float) -> list[Doc]:
        """Instances a job might rather wait for (the scheduling rule, ledger_schedule.py)."""
        query = {"render_s": {"$lt": render_s}, "healthy": True, "leases.0": {"$exists": True}}
        return await self.instances.find(self._ours(query)).to_list()

    # -- health --------------------------------------------------------------------

    async def write_health(self, url: str, fields: Doc) -> None:
        await self.instances.update_one({"_id": url}, {"$set": fields})

    async def claim_probe(self, url: str, hold_s: float) -> bool:
        now = time.time()
        claimed = await self.instances.find_one_and_update(
            {"_id": url, "probe_until": {"$lt": now}},
            {"$set": {"probe_until": now + hold_s, "prober": self.replica}},
            projection={"_id": 1},
        )
        return claimed is not None
