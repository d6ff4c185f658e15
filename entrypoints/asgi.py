"""The ASGI app `inspilot serve` runs, built inside the server's worker from the environment."""

from __future__ import annotations

import logging

from litestar import Litestar

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that log a line per model call at INFO (httpx: "HTTP Request: POST ...").
CHATTY_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "pymongo")


def configure_logging(settings: Settings) -> None:
    """One format for every line; a study's thousands of model calls log nothing at INFO."""
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT, force=True)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.root.level))


def app_factory() -> Litestar:
    """Called by granian in its worker process (the pools and clients live there)."""
    settings = Settings.load()
    app = create_app(build_container(settings))
    # After create_app: Litestar applies its own logging configuration there.
    configure_logging(settings)
    return app
