"""Durations counted into buckets, and merged across instances, as histograms need them."""

from __future__ import annotations

from application.durations import DurationBuckets, DurationCounts


def test_each_duration_counts_in_every_bucket_at_or_above_it() -> None:
    buckets = DurationBuckets((1.0, 5.0, 30.0))
    for seconds in (0.2, 1.0, 4.9, 12.0, 400.0):
        buckets.observe(seconds)
    counts = buckets.snapshot()
    assert counts.cumulative == (2, 3, 4)  # le=1 holds 0.2 and 1.0 (bounds are inclusive)
    assert counts.count == 5 and counts.sum_s == 418.1


def test_instances_merge_bucket_by_bucket() -> None:
    first, second = DurationBuckets((1.0, 5.0)), DurationBuckets((1.0, 5.0))
    first.observe(0.5)
    second.observe(3.0)
    second.observe(9.0)
    merged = DurationCounts.merged((1.0, 5.0), [first.snapshot(), second.snapshot()])
    assert (merged.cumulative, merged.count, merged.sum_s) == ((1, 2), 3, 12.5)
