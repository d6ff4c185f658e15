"""The Litestar app factory: routes, CORS, body limit, error mapping and adapter lifecycles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from entrypoints.container import Container, build_container
from entrypoints.http.dependencies import dependencies
from entrypoints.http.envelope import EXCEPTION_HANDLERS
from entrypoints.http.jobs import JobsController
from entrypoints.http.legacy import LegacyController, ping_get, ping_post
from entrypoints.http.research import ResearchController, research_guard
from entrypoints.lifecycle import running


def create_app(container: Container | None = None) -> Litestar:
    """Build the app; a broken prompt template raises here, so the service never starts with it.

    Request-level concerns (request ids, a roster of allowed usernames) plug in here as
    middleware or guards: the legacy routes (`LegacyController`) and the jobs API
    (`JobsController`) are open, the research API sits behind its token guard.
    """
    container = container or build_container()
    container.prompts()  # loads and validates every template now, not on the first request
    settings = container.settings()

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        async with running(container):
            yield

    research = Router(
        path="/",
        route_handlers=[ResearchController],
        guards=[research_guard(settings.research_token)],
    )
    return Litestar(
        route_handlers=[LegacyController, ping_get, ping_post, JobsController, research],
        dependencies=dependencies(container),
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization"],
        ),
        openapi_config=OpenAPIConfig(title="InsPilot API", version="0.1.0", path="/schema"),
        request_max_body_size=settings.max_body_mb * 1024 * 1024,
        state=State({"container": container}),  # for tests and operators; handlers use DI
    )
