"""Operators' endpoints: liveness, readiness and Prometheus metrics (no envelope, no token).

They carry no participant data, so they are open like `/ping`; put them behind the
reverse proxy's own rules if the metrics should not be public.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Response, get
from litestar.di import NamedDependency

from entrypoints.observability.health import Readiness
from entrypoints.observability.metrics import CONTENT_TYPE, MetricsExposition


@get("/health/live", operation_id="healthLive", tags=["operations"], sync_to_thread=False)
def health_live() -> dict[str, bool]:
    """The process answers; nothing else is checked."""
    return {"live": True}


@get("/health/ready", operation_id="healthReady", tags=["operations"])
async def health_ready(readiness: NamedDependency[Readiness]) -> Response[dict[str, Any]]:
    """200 when storage, prompts, an SD instance and the text model are all usable; else 503."""
    ready, checks = await readiness.check()
    body = {"ready": ready, "checks": {name: check.as_dict() for name, check in checks.items()}}
    return Response(body, status_code=200 if ready else 503, media_type=MediaType.JSON)


@get("/metrics", operation_id="metrics", tags=["operations"], sync_to_thread=False)
def metrics(metrics_exposition: NamedDependency[MetricsExposition]) -> Response[bytes]:
    """Prometheus text exposition format."""
    return Response(metrics_exposition.render(), media_type=CONTENT_TYPE)
