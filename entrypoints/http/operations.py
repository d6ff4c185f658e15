"""Operators' endpoints: liveness, readiness and Prometheus metrics (no envelope, no token).

They carry no participant data, so they are open like `/ping`; put them behind the
reverse proxy's own rules if the metrics should not be public.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get

from entrypoints.observability.health import readiness
from entrypoints.observability.metrics import CONTENT_TYPE


@get("/health/live", operation_id="healthLive", tags=["operations"], sync_to_thread=False)
def health_live() -> dict[str, bool]:
    """The process answers; nothing else is checked."""
    return {"live": True}


@get("/health/ready", operation_id="healthReady", tags=["operations"])
async def health_ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """200 when storage, prompts, an SD instance and the text model are all usable; else 503."""
    ready, checks = await readiness(request.app.state.container)
    body = {"ready": ready, "checks": {name: check.as_dict() for name, check in checks.items()}}
    return Response(body, status_code=200 if ready else 503, media_type=MediaType.JSON)


@get("/metrics", operation_id="metrics", tags=["operations"], sync_to_thread=False)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text exposition format."""
    container = request.app.state.container
    body = container.metrics().exposition(container)
    return Response(body, media_type=CONTENT_TYPE)
