"""What one request may hold open: a small ASGI guard outside the whole app.

granian bounds the bytes before a request (its header-read timeout, which is also the
keep-alive idle timeout); everything after the headers is ours:

- at most `max_inflight_bytes` of request bodies in flight (their declared sizes): a body
  that would pass it waits up to INFLIGHT_WAIT_S for room, then gets 503 with
  Retry-After (20 concurrent 60 MB saves drove the service to 4.6 GB);
- at most `max_open` requests in flight; beyond that a clear 503 (code 3, Retry-After)
  at once, instead of a server that stops answering everyone (1,100 slow bodies kept
  `/ping` waiting 100 s);
- a body that makes no progress for `body_timeout_s` is cut with 408;
- at most `sse_per_job` followers of one job's events and `sse_total` in all (429);
- on shutdown every request still waiting for the client is told the client left: event
  streams end, slow bodies are cut, a running `/generate` is cancelled and recorded.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar.exceptions import HTTPException

logger = logging.getLogger("inspilot.http")
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
Message = dict[str, Any]

CODE_INVALID = 1
CODE_INTERNAL = 3
_EVENTS_PATH = re.compile(r"/api/v1/jobs/([^/]+)/events/?")
_DISCONNECT: Message = {"type": "http.disconnect"}
INFLIGHT_WAIT_S = 2.0
"""How long a body waits for room under INSPILOT_MAX_INFLIGHT_MB before a 503."""


def declared_size(scope: dict[str, Any], chunked_size: int) -> int:
    """The bytes a request's body will hold: its Content-Length; a chunked body counts as
    the largest body allowed (it does not say)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return max(0, int(value))
            except ValueError:
                return chunked_size
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return chunked_size
    return 0


class _Refusal(Exception):
    def __init__(self, status: int, code: int, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after_s = (
            status,
            code,
            message,
            retry_after_s,
        )


async def _send_refusal(send: Any, refusal: _Refusal) -> None:
    body = msgspec.json.encode(
        {"success": False, "data": None, "code": refusal.code, "message": refusal.message}
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(refusal.retry_after_s).encode()),
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ConnectionGuard:
    """Counts and bounds requests; `shut_down()` releases every one waiting on its client."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_open: int,
        body_timeout_s: float,
        sse_per_job: int,
        sse_total: int,
        max_inflight_bytes: int,
        max_body_bytes: int,
    ) -> None:
        self._app = app
        self._max_inflight = max_inflight_bytes
        self._max_body = max_body_bytes
        self.inflight_bytes = 0
        self._room: asyncio.Condition | None = None
        self._max_open = max_open
        self._body_timeout_s = body_timeout_s
        self._sse_per_job = sse_per_job
        self._sse_total = sse_total
        self.open = 0
        self._followers: Counter[str] = Counter()
        self._closing = False
        self._waiting: set[asyncio.Task[Any]] = set()
        """Tasks waiting on their client now: what `shut_down()` releases."""

    @property
    def followers(self) -> int:
        return sum(self._followers.values())

    def shut_down(self) -> None:
        """From now on, every wait for the client ends as if it had left. Called on the
        serving loop (its signal handler, the app's shutdown)."""
        if not self._closing:
            logger.info("shutting down: %s open requests are released", self.open)
        self._closing = True
        for task in self._waiting:
            task.cancel()  # each answers `http.disconnect` to its caller

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        try:
            job = self._admit(scope)
        except _Refusal as refusal:
            await _send_refusal(send, refusal)
            return
        size = declared_size(scope, self._max_body)
        if size and not await self._reserve(size):
            message = (
                f"service: busy, {self.inflight_bytes // 1_048_576} MB of request bodies in "
                f"flight (INSPILOT_MAX_INFLIGHT_MB is {self._max_inflight // 1_048_576}); "
                "try again shortly"
            )
            await self._discard_body(receive)
            await _send_refusal(send, _Refusal(503, CODE_INTERNAL, message, 2))
            return
        self.open += 1
        if job is not None:
            self._followers[job] += 1
        try:
            await self._app(scope, self._guarded_receive(receive), send)
        finally:
            if size:
                await self._release(size)
            self.open -= 1
            if job is not None:
                self._followers[job] -= 1
                if self._followers[job] <= 0:
                    del self._followers[job]

    async def _discard_body(self, receive: Any) -> None:
        """Read a refused body to its end, keeping none of it. A client still sending a
        large body reads no answer before it has sent it all: answering first and closing
        reset its connection, and it saw a network error instead of the 503 with its
        Retry-After. Bounded like any body: the body timeout, shutdown, the largest body."""
        read = 0
        guarded = self._guarded_receive(receive)
        while read <= self._max_body:
            try:
                message = await guarded()
            except HTTPException:  # stalled: the refusal goes out now, the client is slow
                return
            if message["type"] != "http.request":
                return
            read += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    def _room_condition(self) -> asyncio.Condition:
        if self._room is None:
            self._room = asyncio.Condition()  # created on the serving loop, at first use
        return self._room

    async def _reserve(self, size: int) -> bool:
        """Count `size` bytes in flight, waiting briefly for room; False when none came."""
        room = self._room_condition()
        deadline = asyncio.get_running_loop().time() + INFLIGHT_WAIT_S
        async with room:
            while self.inflight_bytes and self.inflight_bytes + size > self._max_inflight:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(room.wait(), remaining)
                except TimeoutError:
                    return False
            self.inflight_bytes += size
            return True

    async def _release(self, size: int) -> None:
        room = self._room_condition()
        async with room:
            self.inflight_bytes -= size
            room.notify_all()

    def _admit(self, scope: dict[str, Any]) -> str | None:
        """Refuses what would pass a cap; returns the job id of an events request."""
        if self._closing:
            raise _Refusal(503, CODE_INTERNAL, "service: shutting down", 5)
        if self.open >= self._max_open:
            raise _Refusal(
                503,
                CODE_INTERNAL,
                f"service: busy, {self.open} requests open "
                f"(INSPILOT_MAX_CONNECTIONS is {self._max_open}); try again shortly",
                1,
            )
        match = _EVENTS_PATH.fullmatch(scope.get("path", ""))
        if match is None or scope.get("method") != "GET":
            return None
        job = match[1]
        if self._followers[job] >= self._sse_per_job:
            raise _Refusal(
                429,
                CODE_INVALID,
                f"events: job '{job}' already has {self._sse_per_job} followers "
                "(INSPILOT_SSE_PER_JOB)",
                5,
            )
        if self.followers >= self._sse_total:
            raise _Refusal(
                429,
                CODE_INVALID,
                f"events: {self._sse_total} event streams are open (INSPILOT_SSE_MAX)",
                5,
            )
        return job

    def _guarded_receive(self, receive: Any) -> Callable[[], Awaitable[Message]]:
        """The app's receive, bounded: no body message for `body_timeout_s` is a 408, and
        shutdown answers `http.disconnect`. One timer per message and no extra task: it
        runs for every byte a slow client sends (5,000 of them at once were measured)."""
        body_done = False

        async def guarded() -> Message:
            nonlocal body_done
            if self._closing:
                return _DISCONNECT
            task = asyncio.current_task()
            assert task is not None
            self._waiting.add(task)
            try:
                if body_done:
                    message: Message = await receive()
                else:
                    async with asyncio.timeout(self._body_timeout_s):
                        message = await receive()
            except TimeoutError:
                # Raised inside the app's body read: its error mapping answers 408 in the
                # envelope.
                raise HTTPException(
                    status_code=408,
                    detail=f"body: no data for {self._body_timeout_s:g}s (INSPILOT_BODY_TIMEOUT_S)",
                    headers={"Connection": "close"},
                ) from None
            except asyncio.CancelledError:
                # Ours when shutting down and nobody else cancelled the task too.
                if self._closing and task.cancelling() == 1:
                    task.uncancel()
                    return _DISCONNECT
                raise
            finally:
                self._waiting.discard(task)
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done = True
            return message

        return guarded
