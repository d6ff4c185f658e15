"""The queue in front of the shared SD slots, and the replicas' documents, in MongoDB.

- `sd_queue`: one document, `{"_id": "queue", "tickets": [{"id", "replica"}, ...]}`, in
  arrival order (the order the server applied the `$push`es, so no clocks are compared);
  a retry is pushed at the front. Every read and write is on that one document by `_id`:
  the embedded server answers those in a fraction of a millisecond, where a sorted query
  over a collection of tickets cost it milliseconds per hundred tickets (measured).
- `sd_replicas`: per replica a heartbeat (`alive_until`) and an inbox: the last slots
  other replicas handed to this one's tickets (`grants`) and how many ever (`granted`).

A slot freed while jobs wait is handed to the head ticket directly (ledger.py), so
waiting replicas never poll the instances; a replica only collects its inbox.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument

Doc = dict[str, Any]
logger = logging.getLogger("inspilot.sd")
QUEUE = "queue"
# Grants kept in a replica's inbox: far more than arrive between two of its reads.
INBOX = 256


class LedgerQueue:
    """One replica's handle on the queue document and the replicas' documents."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str, replica: str) -> None:
        db = client[database]
        self.queue, self.replicas = db["sd_queue"], db["sd_replicas"]
        self.replica = replica

    async def prepare(self) -> None:
        await self.queue.update_one({"_id": QUEUE}, {"$setOnInsert": {"tickets": []}}, upsert=True)

    # -- the queue -------------------------------------------------------------------

    async def waiting(self) -> int:
        doc = await self.queue.find_one({"_id": QUEUE}, {"tickets": 1})
        return 0 if doc is None else len(doc["tickets"])

    async def enqueue(self, ticket: str, retry: bool) -> None:
        entry: Doc = {"id": ticket, "replica": self.replica}
        push: Doc = {"$each": [entry], "$position": 0} if retry else {"$each": [entry]}
        await self.queue.update_one({"_id": QUEUE}, {"$push": {"tickets": push}}, upsert=True)

    async def head(self, count: int) -> list[Doc]:
        doc = await self.queue.find_one({"_id": QUEUE}, {"tickets": {"$slice": count}})
        return [] if doc is None else list(doc["tickets"])

    async def pop_head(self) -> Doc | None:
        """Take the first ticket off the queue (one update), or None when it is empty.

        The update moves the head into `popped` and the ticket is read from the
        post-image: the embedded server's `find_one_and_update` on one document
        contended by several clients returned stale *pre*-images (200 concurrent `$pop`s:
        54 tickets lost, others returned twice), while its post-image comes from the
        write itself (600 concurrent pops here: none lost, none twice)."""
        after = await self.queue.find_one_and_update(
            {"_id": QUEUE, "tickets.0": {"$exists": True}},
            [
                {
                    "$set": {
                        "popped": {"$first": "$tickets"},
                        "tickets": {
                            "$slice": ["$tickets", 1, {"$max": [1, {"$size": "$tickets"}]}]
                        },
                    }
                }
            ],
            projection={"popped": 1},
            return_document=ReturnDocument.AFTER,
        )
        return None if after is None else dict(after["popped"])

    async def withdraw(self, ticket: str) -> bool:
        """Take a ticket off the queue; False when a replica already handed it a slot."""
        result = await self.queue.update_one(
            {"_id": QUEUE, "tickets.id": ticket}, {"$pull": {"tickets": {"id": ticket}}}
        )
        return result.modified_count == 1

    async def put_back(self, ticket: Doc) -> None:
        """A ticket popped for a slot that was lost meanwhile goes back to the front."""
        await self.queue.update_one(
            {"_id": QUEUE}, {"$push": {"tickets": {"$each": [ticket], "$position": 0}}}
        )

    async def tickets_of(self, replica: str) -> set[str]:
        doc = await self.queue.find_one({"_id": QUEUE}, {"tickets": 1})
        tickets = [] if doc is None else doc["tickets"]
        return {ticket["id"] for ticket in tickets if ticket["replica"] == replica}

    # -- the replicas: heartbeats and inboxes -------------------------------------------

    async def grant(self, replica: str, ticket: str, url: str, lease: str, lease_s: float) -> bool:
        """Hand a slot to another replica's ticket; False if that replica has left or
        missed a beat (a dead replica must not be handed slots until it is forgotten)."""
        alive = time.time() + lease_s / 2
        entry = {"ticket": ticket, "url": url, "lease": lease}
        result = await self.replicas.update_one(
            {"_id": replica, "alive_until": {"$gt": alive}},
            {"$push": {"grants": {"$each": [entry], "$slice": -INBOX}}, "$inc": {"granted": 1}},
        )
        return result.matched_count == 1

    async def collect(self, seen: int) -> tuple[int, list[Doc]]:
        """Grants since the `seen`-th: one read by `_id`, which finds nothing (cheaply)
        when none came. The inbox keeps the last INBOX grants, so nobody empties it."""
        doc = await self.replicas.find_one(
            {"_id": self.replica, "granted": {"$gt": seen}}, {"grants": 1, "granted": 1}
        )
        if doc is None:
            return seen, []
        count = int(doc["granted"])
        grants = list(doc["grants"])
        if count - seen > len(grants):
            # Missed ones: their tickets go back to the queue (housekeeping) and their
            # slots come back when their leases run out.
            logger.warning(
                "SD ledger: %d slots handed here were missed", count - seen - len(grants)
            )
        return count, grants[max(0, len(grants) - (count - seen)) :]

    async def beat(self, lease_s: float) -> None:
        await self.replicas.update_one(
            {"_id": self.replica},
            {
                "$set": {"alive_until": time.time() + lease_s},
                "$setOnInsert": {"grants": [], "granted": 0},
            },
            upsert=True,
        )

    async def forget_dead_replicas(self) -> list[str]:
        """Replicas that stopped beating, and their tickets: they must not block the head.

        Slots handed to a dead replica's inbox are not lost: their leases expire and are
        taken back like any other lease of the dead."""
        now = time.time()
        dead = [doc["_id"] async for doc in self.replicas.find({"alive_until": {"$lt": now}})]
        if dead:
            await self.queue.update_one(
                {"_id": QUEUE}, {"$pull": {"tickets": {"replica": {"$in": dead}}}}
            )
            await self.replicas.delete_many({"_id": {"$in": dead}, "alive_until": {"$lt": now}})
        return dead

    async def leave(self) -> None:
        await self.queue.update_one(
            {"_id": QUEUE}, {"$pull": {"tickets": {"replica": self.replica}}}
        )
        await self.replicas.delete_one({"_id": self.replica})
