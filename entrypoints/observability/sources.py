"""What monitoring reads from adapters, as Protocols: any adapter offering them is shown.

Monitoring asks, never requires: the demo image model has no pool, and a repository
used without the background record writer has no queue, so each figure appears only
where an adapter provides it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class PoolStatsSource(Protocol):
    """An image generator with a pool of instances (SdWebUIImageGenerator.stats())."""

    def stats(self) -> Any: ...


@runtime_checkable
class RecordQueueStats(Protocol):
    """A background writer of generation records: records waiting, and writes that failed."""

    def depth(self) -> int: ...

    def failures(self) -> int: ...


@runtime_checkable
class EndpointStatsSource(Protocol):
    """A text generator that reports per-endpoint figures: an iterable of mappings or
    dataclasses, each with an `endpoint` name and numeric fields."""

    def endpoint_stats(self) -> Iterable[Any]: ...


def pool_stats(images: object) -> Any | None:
    return images.stats() if isinstance(images, PoolStatsSource) else None


def record_queue(repository: object) -> RecordQueueStats | None:
    """The repository when it writes records in the background (the RecordWriter)."""
    return repository if isinstance(repository, RecordQueueStats) else None


def endpoint_stats(text: object) -> list[dict[str, Any]]:
    if not isinstance(text, EndpointStatsSource):
        return []
    rows = []
    for item in text.endpoint_stats():
        row = dict(item) if isinstance(item, dict) else dict(vars(item))
        rows.append(row)
    return rows


@dataclass(frozen=True)
class MonitoredAdapters:
    """The adapters monitoring reads, as the container provides them for one request:
    the metrics and the dashboard get these, never the container itself."""

    images: object
    text: object
    repository: object

    def pool_stats(self) -> Any | None:
        return pool_stats(self.images)

    def record_queue(self) -> RecordQueueStats | None:
        return record_queue(self.repository)

    def endpoint_stats(self) -> list[dict[str, Any]]:
        return endpoint_stats(self.text)
