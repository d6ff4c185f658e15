"""Running independent steps side by side, surfacing the error that explains a failure,
and bounding how many bytes concurrent work holds at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any, TypeVar, cast

from domain.errors import InsPilotError

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(_leaves(exc))
        else:
            leaves.append(exc)
    return leaves


async def run_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Await all at once; on the first failure cancel the rest and raise that failure.

    A TaskGroup reports failures as an ExceptionGroup; the HTTP layer maps single typed
    errors, so the most telling leaf (one of ours, if any) is raised unwrapped.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_as_coroutine(item)) for item in awaitables]
    except BaseExceptionGroup as failure:
        leaves = _leaves(failure)
        ours = [exc for exc in leaves if isinstance(exc, InsPilotError)]
        raise (ours or leaves)[0] from None
    return [task.result() for task in tasks]


async def run_both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """`run_all` of two steps of different result types, each result keeping its type."""
    one, two = await run_all([first, second])
    return cast(A, one), cast(B, two)


async def run_three(
    first: Awaitable[A], second: Awaitable[B], third: Awaitable[C]
) -> tuple[A, B, C]:
    """`run_all` of three steps of different result types, each result keeping its type."""
    one, two, three = await run_all([first, second, third])
    return cast(A, one), cast(B, two), cast(C, three)


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


class ByteBudget:
    """At most `limit` bytes held at once by all holders; a larger holder waits for all."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self.most_used = 0  # for tests and benchmarks
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        size = min(size, self._limit)
        async with self._changed:
            await self._changed.wait_for(lambda: self._used + size <= self._limit)
            self._used += size
            self.most_used = max(self.most_used, self._used)
        try:
            yield
        finally:
            async with self._changed:
                self._used -= size
                self._changed.notify_all()
