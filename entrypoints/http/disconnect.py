"""Stop work for a client that has gone: its images would free their SD slots only at the end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from litestar import Request

from domain.errors import InsPilotError

T = TypeVar("T")


class ClientGone(InsPilotError):
    """The client closed the connection before the answer was ready."""


async def unless_disconnected(request: Request[Any, Any, Any], work: Awaitable[T]) -> T:
    """Run `work`, cancelling it as soon as the client disconnects.

    The body has been read by now, so the next ASGI message can only be the disconnect
    (servers send it when the connection closes, or once the response is complete).
    """
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                task.cancel()
                return

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():
            raise ClientGone("client: the connection closed before the answer was ready") from None
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
