"""Who may read research data: the research token as a bearer header, or a dashboard session.

The dashboard's cookie holds a random session id, never the token: the server keeps the
ids (expiring after `INSPILOT_DASHBOARD_SESSION_H`, revoked at logout), so a cookie
copied from a browser stops working when its researcher logs out. Wrong tokens, at the
login form or as bearer headers, are counted per client address: after a few, each
next try waits twice as long (429 with Retry-After, one log line), so the token cannot
be guessed at hundreds per second. The rules and their state are the application's
`DashboardAccess` (in the database with MongoDB-backed storage, shared by every worker
and replica); this module ties them to requests.
"""

from __future__ import annotations

import hmac
import logging
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

from application.dashboard_access import DashboardAccess
from entrypoints.http.client import ClientView

COOKIE = "inspilot_research"
OFF_MESSAGE = "the research API is off: set INSPILOT_RESEARCH_TOKEN"

Connection = ASGIConnection[Any, Any, Any, Any]
logger = logging.getLogger("inspilot.access")


def matches(sent: str | None, expected: str) -> bool:
    return bool(sent) and hmac.compare_digest(str(sent).encode(), expected.encode())


def bearer(connection: Connection) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


class ResearchAccess:
    """The research token, the client's real address, and the dashboard's sessions and
    throttle (asked of `state()` each time: a restarted app builds a new one)."""

    def __init__(
        self,
        token: str,
        *,
        state: Callable[[], DashboardAccess] | None = None,
        clients: ClientView | None = None,
    ) -> None:
        self.token = token
        self._state = state
        self._clients = clients or ClientView(())

    @property
    def state(self) -> DashboardAccess:
        if self._state is None:
            raise RuntimeError("ResearchAccess was built without its sessions")
        return self._state()

    # -- where the request came from -----------------------------------------------

    def client(self, connection: Connection) -> str:
        """The client's address; behind a trusted proxy, the one it forwarded."""
        return self._clients.address(connection.scope) or "-"

    def over_https(self, connection: Connection) -> bool:
        """HTTPS to us, or to a trusted proxy that says so."""
        return self._clients.is_https(connection.scope)

    # -- wrong tokens ----------------------------------------------------------------

    async def retry_after_s(self, connection: Connection) -> int:
        """Seconds this client must wait before its next try (0: it may try now)."""
        return await self.state.retry_after_s(self.client(connection))

    async def check_throttle(self, connection: Connection) -> None:
        wait = await self.retry_after_s(connection)
        if wait:
            raise TooManyRequestsException(
                detail=f"token: too many wrong tokens from this address; try again in {wait}s",
                headers={"Retry-After": str(wait)},
            )

    async def failed(self, connection: Connection, where: str) -> None:
        address = self.client(connection)
        failure = await self.state.failed(address)
        if failure.wait_s:
            logger.warning(
                "wrong research token from %s at %s (%d in a row): next try in %.0fs",
                address,
                where,
                failure.count,
                failure.wait_s,
            )

    async def succeeded(self, connection: Connection) -> None:
        await self.state.succeeded(self.client(connection))

    # -- dashboard sessions -----------------------------------------------------------

    async def open_session(self) -> str:
        return await self.state.open_session()

    async def close_session(self, session: str | None) -> None:
        await self.state.close_session(session)

    @property
    def session_max_age_s(self) -> int:
        return int(self.state.session_s)

    async def admits(self, connection: Connection) -> bool:
        if not self.token:
            return False
        return await self.state.session_valid(connection.cookies.get(COOKIE))


def research_guard(access: ResearchAccess) -> Guard:
    """A guard admitting calls that send the token as a bearer token or carry a dashboard
    session; with no token set, the research API is off for everyone. A coroutine: Litestar
    runs a plain function guard in its thread pool (40 threads), where a burst of requests
    queues every one of them for seconds."""

    async def require_research_token(connection: Connection, _: BaseRouteHandler) -> None:
        if not access.token:
            raise PermissionDeniedException(OFF_MESSAGE)
        if await access.admits(connection):
            return
        await access.check_throttle(connection)
        if matches(bearer(connection), access.token):
            await access.succeeded(connection)
            return
        if bearer(connection) is not None:
            await access.failed(connection, connection.url.path)
        raise NotAuthorizedException("a valid 'Authorization: Bearer <token>' header is required")

    return require_research_token
