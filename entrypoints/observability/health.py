"""Readiness: can this process serve a participant now? One check per dependency.

The SD check reads the pool's own view, which its health probes keep current, so
readiness follows an instance going down or coming back within one probe interval
without probing anything itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from application.ports import ExperimentRepository, StorageProbe
from application.record_writer import underlying_store
from domain.errors import InsPilotError
from entrypoints.http.free_space import FreeSpace
from entrypoints.observability.sources import pool_stats
from entrypoints.settings import Settings

# A username no participant can have (check_username refuses a leading '$'): reading it
# asks a store that cannot write (no StorageProbe) a real question without touching study data.
_PROBE_USERNAME = "$health"
STORAGE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


async def check_storage(repository: ExperimentRepository) -> Check:
    """A tiny write read back: a database that lost its disk still answers reads."""
    store = underlying_store(repository)
    name = type(store).__name__
    try:
        async with asyncio.timeout(STORAGE_TIMEOUT_S):
            if isinstance(store, StorageProbe):
                await store.round_trip()
            else:
                await repository.get(_PROBE_USERNAME)
    except TimeoutError:
        return Check(False, f"{name}: no answer within {STORAGE_TIMEOUT_S:.0f}s")
    except InsPilotError as exc:
        return Check(False, f"{name}: {exc.message}")
    return Check(True, f"{name} answers a write and a read")


def prompt_set_lines(catalogs: Iterable[object]) -> list[str]:
    """One line per prompt set: the version serving, and a refused edit (its file named
    within the set: readiness is open, and absolute paths tell an attacker about the machine)."""
    lines = []
    for catalog in catalogs:
        version = getattr(catalog, "set_version", None)
        line = f"templates loaded (version {version})" if version else "templates loaded"
        refused = getattr(catalog, "refused", None)
        if refused:
            line += f"; edit refused, still serving the last good version: {refused}"
        lines.append(line)
    return lines


def check_prompts(load_prompts: Callable[[], Iterable[object]]) -> Check:
    """Ready while every set serves: a refused live edit is reported, never fatal (the
    last good version keeps serving)."""
    try:
        catalogs = list(load_prompts())
    except Exception as exc:  # the app refuses to start on a bad template; this is belt and braces
        return Check(False, f"templates cannot be loaded: {exc}")
    return Check(True, "; ".join(prompt_set_lines(catalogs)) or "no prompt sets")


def check_sd(settings: Settings, images: object) -> Check:
    if settings.images_backend != "sd":
        return Check(True, f"{settings.images_backend} image backend: no instances to probe")
    stats = pool_stats(images)
    if stats is None:
        return Check(False, "the image generator reports no pool")
    healthy = [item.instance for item in stats.instances if item.healthy]
    total = len(stats.instances)
    if not healthy:
        return Check(False, f"0 of {total} SD instances healthy")
    return Check(True, f"{len(healthy)} of {total} SD instances healthy")


def check_text(settings: Settings) -> Check:
    backend = settings.text_backend
    if backend == "demo":
        return Check(True, "demo text model")
    if backend == "azure":
        configured = bool(settings.azure_openai_endpoint and settings.azure_openai_deployment)
        model = settings.azure_openai_deployment
    else:
        configured = bool(settings.openai_model)
        model = settings.openai_model
    if not configured:
        return Check(False, f"{backend} text backend is not configured")
    return Check(True, f"{backend} text model {model} configured")


@dataclass(frozen=True)
class Readiness:
    """What readiness looks at, provided per request by the container. The catalog comes
    as its loader, so a template that cannot be loaded is a failed check, not an error."""

    settings: Settings
    free_space: FreeSpace
    repository: ExperimentRepository
    load_prompts: Callable[[], Iterable[object]]
    images: object

    async def check(self) -> tuple[bool, dict[str, Check]]:
        checks = {
            "storage": await check_storage(self.repository),
            "disk": Check(*self.free_space.describe()),
            "prompts": check_prompts(self.load_prompts),
            "sd": check_sd(self.settings, self.images),
            "text": check_text(self.settings),
        }
        return all(check.ok for check in checks.values()), checks
