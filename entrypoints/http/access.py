"""Who may read research data: the research token, as a bearer header or the dashboard's cookie.

The dashboard keeps the token in an HttpOnly, SameSite=Strict cookie: page scripts cannot
read it and other sites cannot make the browser send it, so the same check serves both.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

COOKIE = "inspilot_research"
OFF_MESSAGE = "the research API is off: set INSPILOT_RESEARCH_TOKEN"

Connection = ASGIConnection[Any, Any, Any, Any]


def matches(sent: str | None, expected: str) -> bool:
    return bool(sent) and hmac.compare_digest(str(sent).encode(), expected.encode())


def bearer(connection: Connection) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


def cookie_holds_token(connection: Connection, expected: str) -> bool:
    return bool(expected) and matches(connection.cookies.get(COOKIE), expected)


def research_guard(token: str) -> Guard:
    """A guard admitting calls that send `token` as a bearer token or in the dashboard's
    cookie; with no token set, the research API is off for everyone."""

    def require_research_token(connection: Connection, _: BaseRouteHandler) -> None:
        if not token:
            raise PermissionDeniedException(OFF_MESSAGE)
        if matches(bearer(connection), token) or matches(connection.cookies.get(COOKIE), token):
            return
        raise NotAuthorizedException("a valid 'Authorization: Bearer <token>' header is required")

    return require_research_token
