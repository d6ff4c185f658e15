"""The study's store for a one-off command (export, replay), also beside a running service.

The embedded database allows one process per data directory: while `inspilot serve`
runs on it, a command reads through the service's database process (found through the
data directory); otherwise it opens the configured storage itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from application.ports import ExperimentRepository, Lifecycle
from entrypoints.settings import Settings


def running_embedded_server(settings: Settings) -> str | None:
    """The URI of the embedded database a running service keeps, read from its data dir."""
    if settings.storage_backend != "embedded":
        return None
    from adapters.embedded_mongo import running_server_uri

    return running_server_uri(settings.data_dir)


@asynccontextmanager
async def opened_store(
    settings: Settings, uri: str | None = None
) -> AsyncIterator[ExperimentRepository]:
    """The store at `uri` (a running service's database process), else the configured one."""
    if uri is not None:
        # The service's own database process: read beside it, no token needed (whoever
        # can read the data directory can read the data).
        from adapters.mongo import MongoExperimentRepository

        repository: ExperimentRepository = MongoExperimentRepository(
            uri, settings.mongodb_database, settings.mongodb_timeout_ms
        )
    else:
        from entrypoints.container import build_container

        repository = build_container(settings).repository()
    if isinstance(repository, Lifecycle):
        await repository.start()
    try:
        yield repository
    finally:
        if isinstance(repository, Lifecycle):
            await repository.close()
