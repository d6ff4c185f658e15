"""The async client the shared-state adapters (job board, dashboard access) open on the
store's database: UTC-aware dates, and the configured timeouts to find and reach it."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient


def shared_state_client(uri: str, timeout_ms: int) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
