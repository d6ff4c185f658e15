"""Dashboard sessions and the wrong-token backoff: one contract for the in-process records
and the MongoDB ones, through the application's rules (a settable clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory_access import InMemoryAccessRecords
from adapters.mongo.access_records import MongoAccessRecords
from application.dashboard_access import (
    FORGET_FAILURES_AFTER,
    AccessRecords,
    DashboardAccess,
    session_key,
)


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.slow)])
async def records(request: pytest.FixtureRequest) -> AsyncIterator[AccessRecords]:
    if request.param == "memory":
        yield InMemoryAccessRecords()
        return
    uri = request.getfixturevalue("mongodb_uri")
    mongo = MongoAccessRecords(lambda: uri, request.getfixturevalue("mongo_database"))
    await mongo.start()
    try:
        yield mongo
    finally:
        await mongo.close()


async def test_a_session_lasts_its_hours_and_ends_at_logout(records: AccessRecords) -> None:
    clock = Clock()
    access = DashboardAccess(records, clock, session_h=2)
    kept, closed = await access.open_session(), await access.open_session()
    assert kept != closed and await access.session_valid(kept)
    assert await records.session_expiry(kept) is None  # only its hash is stored
    await access.close_session(closed)
    assert not await access.session_valid(closed)
    clock.at += timedelta(hours=2) - timedelta(seconds=1)
    assert await access.session_valid(kept)
    clock.at += timedelta(seconds=1)
    assert not await access.session_valid(kept)
    assert not await access.session_valid(None) and not await access.session_valid("made-up")


async def test_wrong_tokens_back_off_doubling_up_to_fifteen_minutes(
    records: AccessRecords,
) -> None:
    clock = Clock()
    access = DashboardAccess(records, clock)
    waits = [(await access.failed("203.0.113.9")).wait_s for _ in range(16)]
    assert waits[:4] == [0] * 4
    assert waits[4:10] == [1, 2, 4, 8, 16, 32]
    assert waits[-1] == 900
    assert await access.retry_after_s("203.0.113.9") == 900
    assert await access.retry_after_s("198.51.100.7") == 0  # another address is not held
    clock.at += timedelta(seconds=900)
    assert await access.retry_after_s("203.0.113.9") == 0
    await access.succeeded("203.0.113.9")
    assert [(await access.failed("203.0.113.9")).count for _ in range(2)] == [1, 2]


async def test_a_counter_left_alone_for_a_day_starts_again(records: AccessRecords) -> None:
    clock = Clock()
    access = DashboardAccess(records, clock)
    for _ in range(6):
        await access.failed("203.0.113.9")
    clock.at += FORGET_FAILURES_AFTER
    failure = await access.failed("203.0.113.9")
    assert (failure.count, failure.wait_s) == (1, 0)
    assert await access.retry_after_s("203.0.113.9") == 0


async def test_a_later_hold_is_never_shortened(records: AccessRecords) -> None:
    now = Clock().now()
    await records.count_failure("a", now, now + timedelta(days=1))
    await records.hold_off("a", now + timedelta(seconds=60))
    await records.hold_off("a", now + timedelta(seconds=5))
    assert await records.held_until("a") == now + timedelta(seconds=60)
    assert session_key("x") != "x" and len(session_key("x")) == 64
