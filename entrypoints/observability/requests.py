"""The outermost ASGI layer: times and counts every request, unknown routes included.

It wraps Litestar's whole handler (router, CORS, error mapping), not one route, so a
404 or a CORS preflight is counted too, and the route template Litestar's router put
in the scope is read once the answer has gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from entrypoints.observability.metrics import UNMATCHED_ROUTE, ServiceMetrics

ASGIApp = Callable[[dict[str, Any], Any, Any], Any]


class ObservedRequests:
    def __init__(self, app: ASGIApp, metrics: Callable[[], ServiceMetrics]) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the client sees when the app dies before answering

        async def send_observed(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, send_observed)
        finally:
            route = scope.get("path_template") or UNMATCHED_ROUTE
            self._metrics().observe_request(
                route, scope.get("method", ""), status, time.perf_counter() - began
            )
