"""What handlers receive: use cases and settings, provided by Litestar from the container.

Handlers name what they need as typed parameters (`start_session: StartSession`) and
never reach for the container; tests override the container's providers as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.di import Provide

from entrypoints.container import Container


def _provide(factory: Callable[[], Any]) -> Provide:
    def dependency() -> Any:
        return factory()

    return Provide(dependency, sync_to_thread=False)


def dependencies(container: Container) -> dict[str, Provide]:
    return {
        name: _provide(getattr(container, name))
        for name in (
            "settings",
            "start_session",
            "save_session",
            "saving",
            "gateway",
            "run_contexts",
            "client_view",
            "participant_cookies",
            "move_participant",
            "jobs",
            "roster",
            "get_session",
            "list_generations",
            "get_generation",
            "get_generation_image",
            "study_reading",
            "repository",
            "research_token",
            "readiness",
            "metrics_exposition",
            "monitored_adapters",
            "run_monitor",
            "prompt_catalogs",
            "free_space",
        )
    }
