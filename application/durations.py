"""Durations counted into fixed buckets: what a histogram needs, kept where they happen.

An adapter that times something (the SD pool: how long a slot was held, how long a job
waited for one) counts each duration into buckets as it goes; the metrics endpoint reads
the counts when it is scraped. Buckets, unlike averages, can be added up across
instances and services, so percentiles stay meaningful.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

# Renders take seconds to minutes; waits for a slot from nothing to minutes.
RENDER_BUCKETS_S = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300)
WAIT_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


@dataclass(frozen=True)
class DurationCounts:
    """A snapshot: `cumulative[i]` durations were at most `bounds[i]`; `count` in all."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    sum_s: float

    @classmethod
    def merged(cls, bounds: tuple[float, ...], parts: Iterable[DurationCounts]) -> DurationCounts:
        cumulative = [0] * len(bounds)
        count, total = 0, 0.0
        for part in parts:
            cumulative = [a + b for a, b in zip(cumulative, part.cumulative, strict=True)]
            count += part.count
            total += part.sum_s
        return cls(bounds, tuple(cumulative), count, total)


@dataclass
class DurationBuckets:
    """Counts durations as they are observed; event-loop only, like its owner."""

    bounds: tuple[float, ...]
    _counts: list[int] = field(init=False)
    _sum_s: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(self.bounds, seconds)] += 1
        self._sum_s += seconds

    def snapshot(self) -> DurationCounts:
        cumulative, running = [], 0
        for count in self._counts[:-1]:
            running += count
            cumulative.append(running)
        return DurationCounts(self.bounds, tuple(cumulative), sum(self._counts), self._sum_s)
