"""`inspilot export`: the study zip, from the running service if there is one, else the store.

The embedded database allows one process per data directory: while `inspilot serve` runs
on it, the export reads through the service's database process (found through the data
directory); a service answering elsewhere is asked for `/api/v1/export` (with the
research token); with neither, the command opens the storage itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import httpx

from domain.errors import InsPilotError
from entrypoints.command_storage import (
    CommandStorage,
    NoStudyHere,
    command_storage,
    opened_repository,
)
from entrypoints.export.archive import ExportProgress, stream_study, study_filter
from entrypoints.settings import Settings

PROBE_TIMEOUT_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="the zip to write, e.g. study.zip")
    parser.add_argument(
        "--username", action="append", default=None, help="only this participant (repeatable)"
    )
    parser.add_argument(
        "--since", default=None, help="ISO time: generations started, sessions saved from then"
    )
    parser.add_argument("--until", default=None, help="ISO time: ... before then")
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="write the zip even when it holds no session and no generation",
    )


class EmptyStudy(InsPilotError):
    """The export would hold nothing: most likely the wrong data directory or filters."""


@dataclass(frozen=True)
class Written:
    """What an export archive holds, counted from the archive itself."""

    participants: int
    generations: int
    pictures: int
    size: int

    @classmethod
    def of(cls, path: Path) -> Written:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        return cls(
            participants=sum(1 for n in names if n.endswith("/session.json")),
            generations=sum(1 for n in names if n.startswith("records/")),
            pictures=sum(1 for n in names if n.startswith("images/")),
            size=path.stat().st_size,
        )

    @property
    def empty(self) -> bool:
        return self.participants == 0 and self.generations == 0

    def __str__(self) -> str:
        return (
            f"{self.participants} participants, {self.generations} generations, "
            f"{self.pictures} pictures, {self.size / 1e6:.1f} MB"
        )


def _iso(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InsPilotError(f"--{name}: not an ISO 8601 time: {value!r}") from None


class _Progress:
    """One self-overwriting line on a terminal; silent when the output is piped."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self.written = 0
        self.counts = ""

    def show(self) -> None:
        if self._tty:
            line = f"\rexporting: {self.counts}{self.written / 1e6:.1f} MB written"
            self._stream.write(line)
            self._stream.flush()

    def counted(self, progress: ExportProgress) -> None:
        self.counts = (
            f"{progress.sessions} participants, {progress.generations} generations, "
            f"{progress.images} pictures, "
        )
        self.show()

    def done(self, path: Path, written: Written) -> None:
        if self._tty:
            self._stream.write("\n")
        self._stream.write(f"inspilot: wrote {path}: {written}\n")


def _service_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


async def _service_answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            return (await client.get(f"{url}/health/live")).status_code == 200
    except httpx.HTTPError:
        return False


async def _from_service(
    url: str, settings: Settings, params: dict[str, str | list[str]]
) -> AsyncIterator[bytes]:
    if not settings.research_token:
        raise InsPilotError(
            f"a service answers at {url}: set INSPILOT_RESEARCH_TOKEN to export through it"
        )
    headers = {"Authorization": f"Bearer {settings.research_token}"}
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0)) as client:
        async with client.stream(
            "GET", f"{url}/api/v1/export", params=params, headers=headers
        ) as reply:
            if reply.status_code != 200:
                body = (await reply.aread()).decode("utf-8", "replace")
                raise InsPilotError(
                    f"{url}/api/v1/export answered {reply.status_code}: {body[:300]}"
                )
            async for chunk in reply.aiter_bytes():
                yield chunk


async def _from_storage(
    storage: CommandStorage, args: argparse.Namespace, progress: _Progress
) -> AsyncIterator[bytes]:
    study = study_filter(args.username, _iso(args.since, "since"), _iso(args.until, "until"))
    async with opened_repository(storage) as repository:
        async for chunk in stream_study(
            repository, study, ExportProgress(on_change=progress.counted)
        ):
            yield chunk


async def _export(
    storage: CommandStorage, args: argparse.Namespace, out: Path, progress: _Progress
) -> Written:
    settings = storage.settings
    url = _service_url(settings)
    if storage.running_uri is None and await _service_answers(url):
        # A service on another store (a real MongoDB, another data directory).
        print(f"inspilot: data: the service at {url}", file=sys.stderr)
        params: dict[str, str | list[str]] = {"username": args.username or []}
        for name in ("since", "until"):
            if getattr(args, name):
                params[name] = getattr(args, name)
        chunks = _from_service(url, settings, params)
    else:
        storage.require_data()
        print(f"inspilot: data: {storage.describe()}", file=sys.stderr)
        chunks = _from_storage(storage, args, progress)
    # Written beside the target and renamed at the end: a failed export leaves no half zip.
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("wb") as file:
            async for chunk in chunks:
                file.write(chunk)
                progress.written += len(chunk)
                progress.show()
        written = Written.of(partial)
        if written.empty and not args.allow_empty:
            raise EmptyStudy(
                "the export holds no session and no generation (wrong data directory or "
                "filters?); nothing was written. --allow-empty writes it anyway"
            )
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return written


def run_export(settings: Settings, args: argparse.Namespace) -> int:
    progress = _Progress(sys.stderr)
    try:
        out = Path(args.out).resolve()
        written = asyncio.run(_export(command_storage(settings), args, out, progress))
    except (NoStudyHere, EmptyStudy) as exc:
        print(f"\ninspilot: export refused: {exc.message}", file=sys.stderr)
        return 2
    except InsPilotError as exc:
        print(f"\ninspilot: export failed: {exc.message}", file=sys.stderr)
        return 1
    progress.done(out, written)
    return 0
