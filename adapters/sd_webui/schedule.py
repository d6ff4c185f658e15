"""Which waiting job goes where when instances render at different speeds.

Earliest completion first: each waiting job, in queue order, takes the slot that
would finish it soonest, counting the busy slots of faster instances by when their
current render should end. A job whose best slot is busy keeps its place and waits;
a free slot is then offered to the next job in the queue. With equal instances this
is the plain "first free slot" rule; with a slower instance (an older GPU, a
throttled one) a job no longer starts there when waiting for a fast one ends sooner.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .instance import Instance

# Weight of the newest render in an instance's running estimate.
EWMA_WEIGHT = 0.3
# A render running this many times longer than its instance's estimate is not
# counted on: its slot may be stuck, so jobs are not held back for it.
OVERDUE_FACTOR = 2.0
# A job waits for a busy instance only if that finishes it sooner by more than this share
# of the render time on the free one.
WAIT_MARGIN = 0.15


def record_render(instance: Instance, seconds: float) -> None:
    if instance.render_s is None:
        instance.render_s = seconds
    else:
        instance.render_s += EWMA_WEIGHT * (seconds - instance.render_s)


@dataclass(frozen=True)
class Plan:
    """Slots to hand out now, by position in the queue, and when to plan again."""

    now: list[tuple[int, Instance]]
    review_at: float | None


def plan(instances: Sequence[Instance], waiting: int, now: float) -> Plan | None:
    """None when no instance has rendered yet: then the first free slot is as good as any."""
    healthy = [item for item in instances if item.healthy]
    known = [item.render_s for item in healthy if item.render_s is not None]
    if not known:
        return None
    default = statistics.median(known)

    def estimate(item: Instance) -> float:
        return item.render_s if item.render_s is not None else default

    slots = [_Slot(now, now, item, free=True) for item in healthy for _ in _free(item)]
    for item in healthy:
        for started in item.running:
            overdue_at = started + OVERDUE_FACTOR * estimate(item)
            if now < overdue_at:
                slots.append(_Slot(max(now, started + estimate(item)), overdue_at, item))

    def finish(slot: _Slot) -> tuple[float, bool, float, float]:
        # On a tie a free slot wins: a job is never held for nothing.
        item = slot.instance
        return (
            slot.free_at + estimate(item),
            not slot.free,
            item.busy / item.slots,
            item.idle_since,
        )

    handed: list[tuple[int, Instance]] = []
    review_at: float | None = None
    for position in range(waiting):
        if not any(slot.free for slot in slots):
            break
        best = min(range(len(slots)), key=lambda index: finish(slots[index]))
        if not slots[best].free:
            best = _free_unless_clearly_slower(slots, best, finish)
        slot = slots[best]
        if slot.free:
            handed.append((position, slot.instance))
        else:
            review_at = slot.overdue_at if review_at is None else min(review_at, slot.overdue_at)
        # The slot is taken by this job until it should be done.
        done_at = slot.free_at + estimate(slot.instance)
        overdue_at = done_at + (OVERDUE_FACTOR - 1) * estimate(slot.instance)
        slots[best] = _Slot(done_at, overdue_at, slot.instance)
    return Plan(handed, review_at)


def _free_unless_clearly_slower(
    slots: list[_Slot], best: int, finish: Callable[[_Slot], tuple[float, bool, float, float]]
) -> int:
    """Renders on equal GPUs differ by a few percent from one job to the next; waiting for
    a busy instance on such a margin leaves a free one idle (benchmarks/load.py: rounds of
    72 jobs on six equal instances took 13.9 s before, 13.7 s after). A job waits only for
    an instance clearly faster."""
    free = [index for index, slot in enumerate(slots) if slot.free]
    nearest = min(free, key=lambda index: finish(slots[index]))
    free_done, busy_done = finish(slots[nearest])[0], finish(slots[best])[0]
    job_s = free_done - slots[nearest].free_at
    return nearest if free_done - busy_done <= WAIT_MARGIN * job_s else best


@dataclass(frozen=True)
class _Slot:
    free_at: float
    overdue_at: float
    instance: Instance
    free: bool = False


def _free(item: Instance) -> range:
    return range(max(item.slots - item.busy, 0))
