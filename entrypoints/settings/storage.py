"""Settings: where sessions and records are kept, and how the store is watched."""

from __future__ import annotations

from dataclasses import dataclass

from entrypoints.settings.parsing import (
    _choice,
    _non_negative_int,
    _positive_float,
    _positive_int,
    _setting,
    _text,
)


@dataclass(frozen=True)
class StorageSettings:
    """Where sessions and records are kept, and how the store is watched."""

    storage_backend: str = _setting(
        "embedded",
        _choice("embedded", "mongodb", "memory"),
        "embedded (SecantusDB in a child process), mongodb, or memory (lost at exit).",
    )
    mongodb_uri: str = _setting("", _text, "MongoDB connection string for the mongodb backend.")
    mongodb_database: str = _setting("inspilot", _text, "Database name.")
    mongodb_timeout_ms: int = _setting(
        "5000", _positive_int, "Connect and server-selection timeout."
    )
    data_dir: str = _setting("./.inspilot/data", _text, "Data directory of the embedded database.")
    embedded_cache_mb: int = _setting(
        "256", _positive_int, "WiredTiger cache of the embedded database's process, in MB."
    )
    # 16, not 256: a queued record holds its pictures (bytes and base64, ~4 MB each), and
    # 256 of them were what held 1.7 GB with 1,000 jobs (16: 544 MB, as fast; measured).
    record_queue_max: int = _setting(
        "16",
        _positive_int,
        "Generation records held for writing (queued or being written), never more; "
        "when full, new generations wait.",
    )
    min_free_mb: int = _setting(
        "1024",
        _non_negative_int,
        "Free space the data directory must keep: below it /paint/save, /generate and new "
        "jobs answer 507 (code 3) and store nothing (0: off).",
    )
    storage_unanswered_s: float = _setting(
        "10",
        _positive_float,
        "Seconds the embedded database may fail its write-and-read health check before "
        "it is killed and restarted.",
    )
