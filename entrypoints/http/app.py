"""The Litestar app factory: routes, CORS, body limit, error mapping and adapter lifecycles."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from application.ports import Lifecycle
from domain.errors import InsPilotError
from entrypoints.container import Container, build_container
from entrypoints.http.dashboard import DashboardController
from entrypoints.http.envelope import EXCEPTION_HANDLERS
from entrypoints.http.legacy import LegacyController, ping_get, ping_post
from entrypoints.http.operations import health_live, health_ready, metrics
from entrypoints.http.research import ResearchController
from entrypoints.observability.requests import ObservedRequests

logger = logging.getLogger("inspilot")


def _adapters(container: Container) -> list[Any]:
    """The adapters that hold connections, in start order (storage first)."""
    return [container.repository(), container.text_generator(), container.image_generator()]


@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    """Open clients on the app's own event loop and close them on it (pymongo, httpx, openai
    clients must never cross event loops)."""
    container: Container = app.state.container
    started: list[Any] = []
    try:
        for adapter in _adapters(container):
            if isinstance(adapter, Lifecycle):
                try:
                    await adapter.start()
                except InsPilotError as exc:
                    # One clear line for the operator, not only a traceback.
                    logger.error("InsPilot cannot start: %s", exc.message)
                    raise
            started.append(adapter)
        logger.info(
            "InsPilot ready: text=%s images=%s storage=%s",
            type(started[1]).__name__,
            type(started[2]).__name__,
            type(started[0]).__name__,
        )
        yield
    finally:
        for adapter in reversed(started):
            if isinstance(adapter, Lifecycle):
                await adapter.close()
        # Closed clients must not be reused: a restarted lifespan builds new ones.
        container.reset_singletons()


def create_app(container: Container | None = None) -> Litestar:
    """Build the app; a broken prompt template raises here, so the service never starts with it."""
    container = container or build_container()
    container.prompts()  # loads and validates every template now, not on the first request
    config = container.config
    app = Litestar(
        route_handlers=[
            LegacyController,
            ping_get,
            ping_post,
            ResearchController,
            health_live,
            health_ready,
            metrics,
            DashboardController,
        ],
        template_config=TemplateConfig(
            directory=Path(__file__).parent / "templates", engine=JinjaTemplateEngine
        ),
        lifespan=[_lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        cors_config=CORSConfig(
            allow_origins=list(config.cors_origins()),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        ),
        openapi_config=OpenAPIConfig(title="InsPilot API", version="0.1.0", path="/schema"),
        request_max_body_size=config.max_body_mb() * 1024 * 1024,
        state=State({"container": container}),
        # Logging is configured once by `inspilot serve` (entrypoints/observability/logs.py);
        # Litestar's own config would replace the root handler and its format.
        logging_config=None,
    )
    # Outermost, around routing and error mapping: unknown routes are observed too.
    app.asgi_handler = ObservedRequests(
        app.asgi_handler, container.metrics, access_log=config.access_log()
    )
    return app
