"""Dashboard sessions and wrong-token counters in this process, for memory storage.

One process only: with `INSPILOT_STORAGE_BACKEND=memory` there is no second worker to
share them with. Bounded: the oldest sessions and addresses are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from application.dashboard_access import AccessRecords

MAX_TRACKED = 10_000
"""Sessions and client addresses remembered at most (the oldest are forgotten first)."""


class InMemoryAccessRecords(AccessRecords):
    def __init__(self, max_tracked: int = MAX_TRACKED) -> None:
        self._max = max_tracked
        self._sessions: OrderedDict[str, datetime] = OrderedDict()
        # address -> (count, held until, kept until)
        self._failures: OrderedDict[str, tuple[int, datetime | None, datetime]] = OrderedDict()

    async def put_session(self, key: str, expires_at: datetime) -> None:
        self._sessions[key] = expires_at
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)

    async def session_expiry(self, key: str) -> datetime | None:
        return self._sessions.get(key)

    async def drop_session(self, key: str) -> None:
        self._sessions.pop(key, None)

    async def count_failure(self, address: str, now: datetime, keep_until: datetime) -> int:
        count, held, kept = self._failures.pop(address, (0, None, keep_until))
        if kept <= now:  # forgotten: no failure for a long while
            count, held = 0, None
        self._failures[address] = (count + 1, held, keep_until)
        while len(self._failures) > self._max:
            self._failures.popitem(last=False)
        return count + 1

    async def hold_off(self, address: str, until: datetime) -> None:
        count, held, kept = self._failures.get(address, (0, None, until))
        self._failures[address] = (count, until if held is None else max(until, held), kept)

    async def held_until(self, address: str) -> datetime | None:
        entry = self._failures.get(address)
        return None if entry is None else entry[1]

    async def forgive(self, address: str) -> None:
        self._failures.pop(address, None)
