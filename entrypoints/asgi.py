"""The ASGI app `inspilot serve` runs, built inside the server's worker from the environment."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from litestar import Litestar

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.memory import return_large_buffers_to_the_system
from entrypoints.observability.logs import configure_logging
from entrypoints.settings import Settings

logger = logging.getLogger("inspilot")


def app_factory() -> Litestar:
    """Called by granian in its worker process (the pools and clients live there)."""
    return_large_buffers_to_the_system()
    settings = Settings.load()
    app = create_app(build_container(settings))
    configure_logging(settings.log_level, settings.log_format)
    _stop_when_orphaned()
    _release_clients_on_signal(app.state["connection_guard"].shut_down)
    return app


def _release_clients_on_signal(release: Callable[[], None]) -> None:
    """granian's worker, on SIGTERM, waits for every open request to end before it tells
    the app to stop: an event stream or a slow body held shutdown for a minute or more.
    Our handler releases those requests first, then sets granian's own stop event.

    granian installs its handlers after loading this app, through `granian._signals`, so
    the hook wraps the function it calls (a private module: the serve tests check it).
    """
    try:
        from granian import _signals
    except ImportError:  # not under granian
        return
    create = _signals.set_loop_signals

    def set_loop_signals(loop: asyncio.AbstractEventLoop) -> Any:
        event = create(loop)

        def on_signal() -> None:
            release()
            event.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        return event

    _signals.set_loop_signals = set_loop_signals


def _stop_when_orphaned(interval_s: float = 1.0) -> None:
    """If granian's main process is killed outright (OOM killer, kill -9), its worker is
    left running, holding the port's work and the embedded database. The worker then
    stops itself the usual way (SIGTERM: records flushed, database stopped)."""
    parent = os.getppid()

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(interval_s):
            if os.getppid() != parent:
                logger.error("the server's main process is gone: stopping this worker")
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, daemon=True, name="orphan-watch").start()
