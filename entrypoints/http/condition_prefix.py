"""`/c/{condition}/...`: the whole legacy contract under a condition's prefix, so each
condition's front-end build points at its own base URL. The prefix is taken off the path
before routing and kept in the scope, where the legacy handlers read it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

Scope = dict[str, Any]  # an ASGI scope, as the other middlewares read it
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

SCOPE_KEY = "inspilot.condition_prefix"


def condition_prefix(scope: Mapping[str, Any]) -> str | None:
    """The condition named by the route the request came in on, if any."""
    value = scope.get(SCOPE_KEY)
    return value if isinstance(value, str) else None


class ConditionPrefixes:
    def __init__(self, app: ASGIApp, conditions: Collection[str]) -> None:
        self._app = app
        self._conditions = frozenset(conditions)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope.get("type") in ("http", "websocket") and path.startswith("/c/"):
            name, slash, rest = path[3:].partition("/")
            if slash and name in self._conditions:
                # In place: the request observer around us reads the route Litestar sets.
                scope["path"] = "/" + rest
                raw = scope.get("raw_path")
                if isinstance(raw, bytes | bytearray):
                    scope["raw_path"] = bytes(raw)[len(name) + 3 :]
                scope[SCOPE_KEY] = name
        await self._app(scope, receive, send)
