"""The outermost ASGI layer: a request id, and the time and count of every request.

It wraps Litestar's whole handler (router, CORS, error mapping), not one route, so a
404 or a CORS preflight is counted too, and the route template Litestar's router put
in the scope is read once the answer has gone.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from entrypoints.observability.logs import request_id_var
from entrypoints.observability.metrics import UNMATCHED_ROUTE, ServiceMetrics

ASGIApp = Callable[[dict[str, Any], Any, Any], Any]
access_logger = logging.getLogger("inspilot.access")
HEADER = b"x-request-id"
# A client's id is kept when it is a plausible id (a proxy's, a load balancer's); anything
# else (too long, spaces, control characters) is replaced rather than written to the logs.
_ACCEPTED_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted by name; any other is counted as `other`, so a client sending random
methods cannot grow the metric series (20,000 made 40,786 series before)."""


def metric_method(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


def request_id_from(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", ()):
        if name == HEADER and _ACCEPTED_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


class ObservedRequests:
    def __init__(
        self, app: ASGIApp, metrics: Callable[[], ServiceMetrics], *, access_log: bool = False
    ) -> None:
        self._app = app
        self._metrics = metrics
        self._access_log = access_log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the client sees when the app dies before answering
        request_id = request_id_from(scope)
        token = request_id_var.set(request_id)

        async def send_observed(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, request_id.encode())]}
            await send(message)

        try:
            await self._app(scope, receive, send_observed)
        finally:
            seconds = time.perf_counter() - began
            route = scope.get("path_template") or UNMATCHED_ROUTE
            method = scope.get("method", "")
            self._metrics().observe_request(route, metric_method(method), status, seconds)
            if self._access_log:
                self._log_access(scope, method, status, seconds)
            request_id_var.reset(token)

    @staticmethod
    def _log_access(scope: dict[str, Any], method: str, status: int, seconds: float) -> None:
        """One line per request, written while its request id is still current."""
        client = scope.get("client") or ("-", 0)
        fields = {
            "client": client[0],
            "method": method,
            "path": scope.get("path", ""),
            "status": status,
            "ms": round(seconds * 1000, 1),
        }
        access_logger.info(
            '%s "%s %s" %d %.1fms',
            fields["client"],
            method,
            fields["path"],
            status,
            fields["ms"],
            extra={"fields": fields},
        )
