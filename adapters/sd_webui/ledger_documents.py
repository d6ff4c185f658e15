"""The shared SD ledger's documents in MongoDB, and every read and write made on them.

- `sd_instances`: one document per instance: `slots`, `free`, the `leases` held
  (`id`, holder replica, job, expiry `until`), and the shared health (`healthy`,
  `cooldown_until`, `consecutive_failures`, `last_error`, `render_s`, `probe_until`).
- `sd_queue`: one ticket per waiting job: `prio` (0 for retries, 1 for new jobs), `seq`
  (when it arrived; its id breaks ties), the `replica` waiting for it.
- `sd_replicas`: a heartbeat (`alive_until`) per replica.

Times are wall-clock seconds (`time.time()`): replicas on several hosts compare them,
so their clocks must agree to well within the lease (NTP does).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError, OperationFailure

_NO_CHANGE_STREAMS = 40573
_QUEUE_ORDER = [("prio", 1), ("seq", 1), ("_id", 1)]

Doc = dict[str, Any]


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
    """One replica's handle on the ledger's collections."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str, replica: str) -> None:
        db = client[database]
        self.instances, self.queue = db["sd_instances"], db["sd_queue"]
        self.replicas = db["sd_replicas"]
        self.replica = replica

    async def prepare(self, slots_by_url: dict[str, int]) -> None:
        """The queue's index and one document per instance (kept if present)."""
        await self.queue.create_index(_QUEUE_ORDER)
        existing = {
            doc["_id"]: doc["slots"]
            async for doc in self.instances.find({"_id": {"$in": list(slots_by_url)}}, {"slots": 1})
        }
        missing = [_fresh(url, slots) for url, slots in slots_by_url.items() if url not in existing]
        if missing:
            # Another replica starting at the same moment may insert some of them first.
            with contextlib.suppress(BulkWriteError):
                await self.instances.insert_many(missing, ordered=False)
        for url, old in existing.items():
            if old != slots_by_url[url]:
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

    # -- slots -------------------------------------------------------------------------

    async def take(self, urls: list[str], lease: str, job: str, lease_s: float) -> str | None:
        """One atomic update: a free slot on a healthy instance, idle longest first."""
        doc = await self.instances.find_one_and_update(
            {"_id": {"$in": urls}, "healthy": True, "free": {"$gt": 0}},
            {
                "$inc": {"free": -1},
                "$push": {
                    "leases": {
                        "id": lease,
                        "holder": self.replica,
                        "job": job,
                        "until": time.time() + lease_s,
                    }
                },
            },
            sort=[("idle_since", 1)],
            projection={"_id": 1},
        )
        return None if doc is None else str(doc["_id"])

    async def give_back(self, url: str, lease: str, render_s: float | None) -> None:
        fields: Doc = {"idle_since": time.time()}
        if render_s is not None:
            fields["render_s"] = render_s
        # Matching the lease makes a second give-back (or one after a reclaim) a no-op.
        await self.instances.update_one(
            {"_id": url, "leases.id": lease},
            {"$pull": {"leases": {"id": lease}}, "$inc": {"free": 1}, "$set": fields},
        )

    async def renew(self, url: str, lease: str, lease_s: float) -> None:
        await self.instances.update_one(
            {"_id": url, "leases.id": lease}, {"$set": {"leases.$.until": time.time() + lease_s}}
        )

    async def expired(self, urls: list[str], now: float) -> list[tuple[str, Doc]]:
        """Leases of other replicas past their expiry, by instance."""
        found = []
        async for doc in self.instances.find({"_id": {"$in": urls}, "leases.until": {"$lt": now}}):
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

    async def free_slots(self, urls: list[str]) -> int:
        free = self.instances.find(
            {"_id": {"$in": urls}, "healthy": True, "free": {"$gt": 0}}, {"free": 1}
        )
        return sum([doc["free"] async for doc in free])

    async def expected_ends(self, urls: list[str], lease_s: float, after: float) -> list[float]:
        """When held slots are expected to be given back after `after` (a lease's start
        plus its instance's render time), soonest first, among the few instances whose
        leases began first. A renewed lease looks younger than it is: the caller never
        waits longer than its polling backoff on this."""
        found = (
            self.instances.find(
                {
                    "_id": {"$in": urls},
                    "healthy": True,
                    "render_s": {"$ne": None},
                    "leases": {"$ne": []},
                },
                {"leases.until": 1, "render_s": 1},
            )
            .sort("leases.until", 1)
            .limit(3)
        )
        ends = [
            lease["until"] - lease_s + doc["render_s"]
            async for doc in found
            for lease in doc.get("leases", ())
        ]
        return sorted(end for end in ends if end > after)

    async def read(self, urls: list[str]) -> list[Doc]:
        return await self.instances.find({"_id": {"$in": urls}}).to_list()

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

    # -- the queue -------------------------------------------------------------------

    async def queue_is_empty(self) -> bool:
        return await self.queue.find_one({}, {"_id": 1}) is None

    async def queue_size(self) -> int:
        return await self.queue.count_documents({})

    async def enqueue(self, ticket: str, retry: bool) -> None:
        # Arrival time orders the queue: one write per waiting job, not two (a counter);
        # replicas on one host share the clock, on several hosts NTP keeps them within
        # milliseconds, closer than two participants' clicks can be told apart anyway.
        ticket_doc = {
            "_id": ticket,
            "prio": 0 if retry else 1,
            "seq": time.time(),
            "replica": self.replica,
            "at": time.time(),
        }
        await self.queue.insert_one(ticket_doc)

    async def head(self, count: int) -> list[str]:
        tickets = self.queue.find({}, {"_id": 1}).sort(_QUEUE_ORDER).limit(count)
        return [str(ticket["_id"]) async for ticket in tickets]

    async def dequeue(self, *tickets: str) -> None:
        await self.queue.delete_many({"_id": {"$in": list(tickets)}})

    async def drop_served(self, waiting: list[str]) -> None:
        """This replica's tickets no job waits on any more (a failed dequeue)."""
        await self.queue.delete_many({"replica": self.replica, "_id": {"$nin": waiting}})

    # -- replicas ----------------------------------------------------------------------

    async def beat(self, lease_s: float) -> None:
        await self.replicas.update_one(
            {"_id": self.replica}, {"$set": {"alive_until": time.time() + lease_s}}, upsert=True
        )

    async def forget_dead_replicas(self) -> list[str]:
        """Replicas that stopped beating, and their tickets: they must not block the head."""
        now = time.time()
        dead = [doc["_id"] async for doc in self.replicas.find({"alive_until": {"$lt": now}})]
        if dead:
            await self.queue.delete_many({"replica": {"$in": dead}})
            await self.replicas.delete_many({"_id": {"$in": dead}, "alive_until": {"$lt": now}})
        return dead

    async def leave(self) -> None:
        await self.queue.delete_many({"replica": self.replica})
        await self.replicas.delete_one({"_id": self.replica})
