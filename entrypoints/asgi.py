"""The ASGI app `inspilot serve` runs, built inside the server's worker from the environment."""

from __future__ import annotations

from litestar import Litestar

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.observability.logs import configure_logging
from entrypoints.settings import Settings


def app_factory() -> Litestar:
    """Called by granian in its worker process (the pools and clients live there)."""
    settings = Settings.load()
    app = create_app(build_container(settings))
    configure_logging(settings.log_level, settings.log_format)
    return app
