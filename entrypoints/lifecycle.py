"""Opening and closing the adapters that hold connections, for the app and the command line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from application.ports import Lifecycle
from application.record_writer import underlying_store
from domain.errors import InsPilotError
from entrypoints.container import Container

logger = logging.getLogger("inspilot")


def _parts(container: Container) -> dict[str, Any]:
    """By name, in start order: storage first; jobs last, so they are cancelled (and
    recorded) before the models and the storage close."""
    return {
        "storage": container.repository(),
        "dashboard access": container.access_records(),
        "text": container.text_generator(),
        "images": container.image_generator(),
        "prompt watcher": container.prompt_watcher(),
        "jobs": container.jobs(),
    }


@asynccontextmanager
async def running(container: Container) -> AsyncIterator[None]:
    """Open clients on the current event loop and close them on it (pymongo, httpx and
    openai clients must never cross event loops)."""
    parts = _parts(container)
    started: list[Any] = []
    try:
        for part in parts.values():
            if isinstance(part, Lifecycle):
                try:
                    await part.start()
                except InsPilotError as exc:
                    # One clear line for the operator, not only a traceback.
                    logger.error("InsPilot cannot start: %s", exc.message)
                    raise
            started.append(part)
        logger.info(
            "InsPilot ready: text=%s images=%s storage=%s",
            type(parts["text"]).__name__,
            type(parts["images"]).__name__,
            type(underlying_store(parts["storage"])).__name__,
        )
        yield
    finally:
        for part in reversed(started):
            if isinstance(part, Lifecycle):
                try:
                    await part.close()
                except Exception:
                    # One adapter failing to close must not leave the others open.
                    logger.exception("closing %s failed", type(part).__name__)
        # Closed clients must not be reused: a restarted lifespan builds new ones.
        container.reset_singletons()
