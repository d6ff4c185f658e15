"""The pool's rule "wait for a clearly faster busy instance" (schedule.py), in the ledger.

A replica holding a free slot asks where in the queue it should go: to the head, unless
the head job would finish sooner on a busy instance that is clearly faster (by the
render-time estimates every replica shares through the instance documents), in which
case the head keeps waiting and the slot goes to the next job, or stays free. The busy
instances' documents are read only when the shared estimates say a clearly faster one
exists, so a pool of equal GPUs pays nothing for the rule.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .instance import Instance
from .ledger_documents import LedgerDocuments
from .ledger_queue import LedgerQueue
from .schedule import WAIT_MARGIN, plan


@dataclass(frozen=True)
class Placement:
    """The queue position the slot goes to (None: nobody now), and when to plan again."""

    position: int | None
    ticket: dict[str, Any] | None = None
    review_at: float | None = None


HEAD = Placement(0)


def clearly_faster_exists(freed: Instance, instances: Sequence[Instance]) -> bool:
    if freed.render_s is None:
        return False
    bound = (1 - WAIT_MARGIN) * freed.render_s
    return any(
        other is not freed
        and other.healthy
        and other.render_s is not None
        and other.render_s < bound
        for other in instances
    )


def worth_timing(instance: Instance, instances: Sequence[Instance]) -> bool:
    """Does any job wait for this instance rather than a clearly slower one? Then when
    its renders begin is written down (a hand-over otherwise keeps the slot's first)."""
    return any(clearly_faster_exists(other, [instance]) for other in instances)


async def place(
    freed: Instance,
    instances: Sequence[Instance],
    docs: LedgerDocuments,
    queue: LedgerQueue | None,
) -> Placement:
    """Where the free slot on `freed` goes; `queue` None: for a job not queued yet."""
    if not clearly_faster_exists(freed, instances):
        return HEAD
    assert freed.render_s is not None
    by_url = {instance.url: instance for instance in instances}
    busy = [doc for doc in await docs.busy_faster_than(freed.render_s) if doc["_id"] in by_url]
    if not busy:
        return HEAD
    waiting = 1 + sum(len(doc["leases"]) for doc in busy)
    tickets = [{}] if queue is None else await queue.head(waiting)
    if not tickets:
        return Placement(None)
    now, wall = time.monotonic(), time.time()
    views = [_view(freed, 1, 0, [])]
    for doc in busy:
        running = [now - (wall - lease.get("since", wall)) for lease in doc["leases"]]
        views.append(_view(by_url[doc["_id"]], doc["slots"], len(doc["leases"]), running, doc))
    planned = plan(views, len(tickets), now)
    if planned is None:
        return HEAD
    for position, instance in planned.now:
        if instance is views[0]:
            return Placement(position, tickets[position], planned.review_at)
    return Placement(None, None, planned.review_at)


def _view(
    instance: Instance,
    slots: int,
    busy: int,
    running: list[float],
    doc: dict[str, Any] | None = None,
) -> Instance:
    render_s = instance.render_s if doc is None else doc.get("render_s")
    return Instance(
        instance.endpoint, slots, healthy=True, busy=busy, render_s=render_s, running=running
    )
