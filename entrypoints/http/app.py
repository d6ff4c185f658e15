"""The Litestar app factory: routes, CORS, body limit, error mapping and adapter lifecycles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp

from entrypoints.container import Container, build_container
from entrypoints.http.access import ResearchAccess, research_guard
from entrypoints.http.condition_prefix import ConditionPrefixes
from entrypoints.http.connection_guard import ConnectionGuard
from entrypoints.http.dashboard import (
    DashboardController,
    DashboardLogin,
    dashboard_refusal,
    favicon,
)
from entrypoints.http.dependencies import dependencies
from entrypoints.http.envelope import EXCEPTION_HANDLERS
from entrypoints.http.free_space import free_space_guard
from entrypoints.http.jobs import JobsController
from entrypoints.http.legacy import LegacyController, ping_get, ping_post
from entrypoints.http.operations import health_live, health_ready, metrics
from entrypoints.http.research import ResearchController
from entrypoints.lifecycle import running
from entrypoints.observability.requests import ObservedRequests
from entrypoints.open_files import connection_cap


def create_app(container: Container | None = None) -> Litestar:
    """Build the app; a broken prompt template raises here, so the service never starts with it.

    The legacy routes and the jobs API are open (a roster, when set, is checked by the use
    cases); the research API sits behind its token guard (bearer or dashboard cookie).
    """
    container = container or build_container()
    container.prompts()  # loads and validates every template now, not on the first request
    study = container.study()  # and every condition's prompt set
    settings = container.settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with running(container):
            try:
                yield
            finally:
                # Whatever still waits on a client (event streams, slow bodies) ends now.
                app.state["connection_guard"].shut_down()

    access = ResearchAccess(
        container.research_token(),
        state=container.dashboard_access,
        clients=container.client_view(),
    )
    # One guard for everything behind the research token: the API and the dashboard.
    research = Router(
        path="/",
        route_handlers=[ResearchController],
        guards=[research_guard(access)],
    )
    dashboard = Router(
        path="/",
        route_handlers=[DashboardController],
        guards=[research_guard(access)],
        exception_handlers={
            NotAuthorizedException: dashboard_refusal,
            PermissionDeniedException: dashboard_refusal,
        },
    )
    app = Litestar(
        route_handlers=[
            LegacyController,
            ping_get,
            ping_post,
            JobsController,
            research,
            health_live,
            health_ready,
            metrics,
            DashboardLogin,
            dashboard,
            favicon,
        ],
        dependencies={
            **dependencies(container),
            "research_access": Provide(lambda: access, sync_to_thread=False),
        },
        guards=[free_space_guard(container.free_space)],
        template_config=TemplateConfig(
            directory=Path(__file__).parent / "templates", engine=JinjaTemplateEngine
        ),
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        ),
        openapi_config=OpenAPIConfig(title="InsPilot API", version="0.1.0", path="/schema"),
        request_max_body_size=settings.max_body_mb * 1024 * 1024,
        state=State({"container": container}),  # for tests and operators; handlers use DI
        # Logging is configured once by `inspilot serve` (entrypoints/observability/logs.py);
        # Litestar's own config would replace the root handler and its format.
        logging_config=None,
    )
    # Litestar types its handler's scope as TypedDicts; our middlewares read ASGI scopes as
    # plain dicts, so the handler is passed on untyped here (and their chain handed back).
    routed: Any = app.asgi_handler
    guard = ConnectionGuard(
        routed,
        max_open=connection_cap(settings.max_connections),
        body_timeout_s=settings.body_timeout_s,
        sse_per_job=settings.sse_per_job,
        sse_total=settings.sse_max,
        max_inflight_bytes=settings.max_inflight_mb * 1024 * 1024,
        max_body_bytes=settings.max_body_mb * 1024 * 1024,
    )
    app.state["connection_guard"] = guard  # `inspilot serve` tells it when SIGTERM comes
    # Outermost, around routing and error mapping: unknown routes and refusals are observed too.
    # Inside the observer, so metrics see the route without the condition prefix; the
    # guard inside the prefixes, so it sees the job routes without them.
    prefixed = ConditionPrefixes(guard, study.names)
    observed = ObservedRequests(prefixed, container.metrics, access_log=settings.access_log)
    app.asgi_handler = cast("ASGIApp", observed)
    return app
