"""Where a one-off command's data lives, said out loud, and reached beside a running service.

A command run from another directory must not quietly open (and create) a new empty
database there: the data directory is resolved to an absolute path and printed, and a
command that reads the study refuses a directory that holds no database. WiredTiger
allows one process per data directory, so while `inspilot serve` runs, commands go
through its database process instead of starting their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from application.ports import ExperimentRepository, Lifecycle
from domain.errors import InsPilotError
from entrypoints.settings import Settings


class NoStudyHere(InsPilotError):
    """The command would read a study, and there is none where it looks."""


@dataclass(frozen=True)
class CommandStorage:
    """The settings with an absolute data directory, and the running service's database
    process when there is one."""

    settings: Settings
    running_uri: str | None

    def describe(self) -> str:
        backend = self.settings.storage_backend
        if backend == "embedded":
            where = f"embedded database in {self.settings.data_dir}"
            if self.running_uri:
                return f"{where} (through the running service's database process)"
            return where
        if backend == "mongodb":
            return f"mongodb, database {self.settings.mongodb_database}"
        return "memory (nothing is kept after this command)"

    def reading_settings(self) -> Settings:
        """The settings the command reads through: beside a running service, its database
        process as a MongoDB server; else the configured storage."""
        if self.running_uri is None:
            return self.settings
        return replace(self.settings, storage_backend="mongodb", mongodb_uri=self.running_uri)

    def require_data(self) -> None:
        """Refuse an embedded data directory that holds no database: opening it would
        create an empty one and read nothing from it."""
        if self.settings.storage_backend != "embedded" or self.running_uri is not None:
            return
        data_dir = Path(self.settings.data_dir)
        if not (data_dir.is_dir() and any(data_dir.iterdir())):
            raise NoStudyHere(
                f"no embedded database in {data_dir} (INSPILOT_DATA_DIR, relative to the "
                "current directory): run the command where the service keeps its data, or "
                "set INSPILOT_DATA_DIR to that directory"
            )


@asynccontextmanager
async def opened_repository(storage: CommandStorage) -> AsyncIterator[ExperimentRepository]:
    """The study's repository, open for the command: the service's own database process
    when it runs (read beside it, no token needed: whoever can read the data directory
    can read the data), else the configured storage."""
    from entrypoints.container import build_container

    # Through the container, like the service: the command builds no adapter itself.
    repository: ExperimentRepository = build_container(storage.reading_settings()).repository()
    if isinstance(repository, Lifecycle):
        await repository.start()
    try:
        yield repository
    finally:
        if isinstance(repository, Lifecycle):
            await repository.close()


def command_storage(settings: Settings) -> CommandStorage:
    """The settings with the data directory made absolute, and the running service's
    database process on it, if any."""
    data_dir = Path(settings.data_dir).expanduser().resolve()
    settings = replace(settings, data_dir=str(data_dir))
    if settings.storage_backend != "embedded":
        return CommandStorage(settings, None)
    from adapters.embedded_mongo import running_server_uri

    return CommandStorage(settings, running_server_uri(str(data_dir)))
