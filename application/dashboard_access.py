"""Who may use the dashboard: its sessions and the throttle on wrong research tokens.

The rules live here, the state behind the `AccessRecords` port: in the process for memory
storage, in the database for MongoDB-backed storage, so that every worker and replica
honours a login made on another, a logout revokes everywhere, and an attacker's wrong
tokens count together wherever they land.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from application.ports import Clock

FREE_FAILURES = 5
"""Wrong tokens from one address before the backoff starts."""
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 900.0
FORGET_FAILURES_AFTER = timedelta(days=1)
"""A counter with no new failure for this long starts again from zero."""


@runtime_checkable
class AccessRecords(Protocol):
    """Sessions (by the hash of their id) and wrong-token counters (by client address)."""

    async def put_session(self, key: str, expires_at: datetime) -> None: ...

    async def session_expiry(self, key: str) -> datetime | None: ...

    async def drop_session(self, key: str) -> None: ...

    async def count_failure(self, address: str, now: datetime, keep_until: datetime) -> int:
        """One more wrong token from `address`, atomically; the count after it. A counter
        kept past its `keep_until` (no failure for a long while) starts again from zero."""
        ...

    async def hold_off(self, address: str, until: datetime) -> None:
        """`address` may not try again before `until` (a later hold already set wins)."""
        ...

    async def held_until(self, address: str) -> datetime | None: ...

    async def forgive(self, address: str) -> None: ...


def backoff_s(failures: int) -> float:
    """The wait after `failures` wrong tokens in a row: none for the first few, then
    1, 2, 4 ... s, at most 15 min."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** min(failures - FREE_FAILURES, 32))


def session_key(session: str) -> str:
    """What is stored for a session id: its hash, so a read of the store opens no session."""
    return hashlib.sha256(session.encode()).hexdigest()


@dataclass(frozen=True)
class Failure:
    count: int
    wait_s: float


class DashboardAccess:
    """Sessions that expire after `session_h` hours and a per-address backoff on wrong tokens."""

    def __init__(self, records: AccessRecords, clock: Clock, *, session_h: float = 12.0) -> None:
        self._records = records
        self._clock = clock
        self.session_s = session_h * 3600

    async def open_session(self) -> str:
        session = secrets.token_urlsafe(32)
        expires = self._clock.now() + timedelta(seconds=self.session_s)
        await self._records.put_session(session_key(session), expires)
        return session

    async def session_valid(self, session: str | None) -> bool:
        if not session:
            return False
        expires = await self._records.session_expiry(session_key(session))
        return expires is not None and expires > self._clock.now()

    async def close_session(self, session: str | None) -> None:
        if session:
            await self._records.drop_session(session_key(session))

    async def retry_after_s(self, address: str) -> int:
        """Seconds `address` must wait before its next try (0: it may try now)."""
        until = await self._records.held_until(address)
        if until is None:
            return 0
        return max(0, math.ceil((until - self._clock.now()).total_seconds()))

    async def failed(self, address: str) -> Failure:
        now = self._clock.now()
        count = await self._records.count_failure(address, now, now + FORGET_FAILURES_AFTER)
        wait = backoff_s(count)
        if wait:
            await self._records.hold_off(address, now + timedelta(seconds=wait))
        return Failure(count, wait)

    async def succeeded(self, address: str) -> None:
        await self._records.forgive(address)
