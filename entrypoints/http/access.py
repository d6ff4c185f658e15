"""Who may read research data: the research token as a bearer header, or a dashboard session.

The dashboard's cookie holds a random session id, never the token: the server keeps the
ids (expiring after `INSPILOT_DASHBOARD_SESSION_H`, revoked at logout), so a cookie
copied from a browser stops working when its researcher logs out. Wrong tokens, at the
login form or as bearer headers, are counted per client address: after a few, each
next try waits twice as long (429 with Retry-After, one log line), so the token cannot
be guessed at hundreds per second.
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from entrypoints.http.client import ClientView

COOKIE = "inspilot_research"
OFF_MESSAGE = "the research API is off: set INSPILOT_RESEARCH_TOKEN"
FREE_FAILURES = 5
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 900.0
MAX_TRACKED = 10_000
"""Sessions and client addresses remembered at most (the oldest are forgotten first)."""

Connection = ASGIConnection[Any, Any, Any, Any]
logger = logging.getLogger("inspilot.access")


def matches(sent: str | None, expected: str) -> bool:
    return bool(sent) and hmac.compare_digest(str(sent).encode(), expected.encode())


def bearer(connection: Connection) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


class ResearchAccess:
    """Dashboard sessions, the throttle on wrong tokens, and the client's real address."""

    def __init__(
        self,
        token: str,
        *,
        session_h: float = 12.0,
        clients: ClientView | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self._session_s = session_h * 3600
        self._clients = clients or ClientView(())
        self._clock = clock
        self._sessions: OrderedDict[str, float] = OrderedDict()
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    # -- where the request came from -----------------------------------------------

    def client(self, connection: Connection) -> str:
        """The client's address; behind a trusted proxy, the one it forwarded."""
        return self._clients.address(connection.scope) or "-"

    def over_https(self, connection: Connection) -> bool:
        """HTTPS to us, or to a trusted proxy that says so."""
        return self._clients.is_https(connection.scope)

    # -- wrong tokens ----------------------------------------------------------------

    def retry_after_s(self, connection: Connection) -> int:
        """Seconds this client must wait before its next try (0: it may try now)."""
        entry = self._failures.get(self.client(connection))
        if entry is None:
            return 0
        return max(0, math.ceil(entry[1] - self._clock()))

    def check_throttle(self, connection: Connection) -> None:
        wait = self.retry_after_s(connection)
        if wait:
            raise TooManyRequestsException(
                detail=f"token: too many wrong tokens from this address; try again in {wait}s",
                headers={"Retry-After": str(wait)},
            )

    def failed(self, connection: Connection, where: str) -> None:
        address = self.client(connection)
        count = self._failures.pop(address, (0, 0.0))[0] + 1
        delay = 0.0
        if count >= FREE_FAILURES:
            delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (count - FREE_FAILURES))
        self._failures[address] = (count, self._clock() + delay)
        while len(self._failures) > MAX_TRACKED:
            self._failures.popitem(last=False)
        if delay:
            logger.warning(
                "wrong research token from %s at %s (%d in a row): next try in %.0fs",
                address,
                where,
                count,
                delay,
            )

    def succeeded(self, connection: Connection) -> None:
        self._failures.pop(self.client(connection), None)

    # -- dashboard sessions -----------------------------------------------------------

    def open_session(self) -> str:
        session = secrets.token_urlsafe(32)
        self._sessions[session] = self._clock() + self._session_s
        while len(self._sessions) > MAX_TRACKED:
            self._sessions.popitem(last=False)
        return session

    def session_valid(self, session: str | None) -> bool:
        if not session or not self.token:
            return False
        expires = self._sessions.get(session)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._sessions[session]
            return False
        return True

    def close_session(self, session: str | None) -> None:
        if session:
            self._sessions.pop(session, None)

    @property
    def session_max_age_s(self) -> int:
        return int(self._session_s)

    def admits(self, connection: Connection) -> bool:
        return self.session_valid(connection.cookies.get(COOKIE))


def research_guard(access: ResearchAccess) -> Guard:
    """A guard admitting calls that send the token as a bearer token or carry a dashboard
    session; with no token set, the research API is off for everyone. A coroutine: Litestar
    runs a plain function guard in its thread pool (40 threads), where a burst of requests
    queues every one of them for seconds."""

    async def require_research_token(connection: Connection, _: BaseRouteHandler) -> None:
        if not access.token:
            raise PermissionDeniedException(OFF_MESSAGE)
        if access.admits(connection):
            return
        access.check_throttle(connection)
        if matches(bearer(connection), access.token):
            access.succeeded(connection)
            return
        if bearer(connection) is not None:
            access.failed(connection, connection.url.path)
        raise NotAuthorizedException("a valid 'Authorization: Bearer <token>' header is required")

    return require_research_token
