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
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import IO

import httpx

from domain.errors import InsPilotError
from entrypoints.export.archive import ExportProgress, stream_study, study_filter
from entrypoints.settings import Settings
from entrypoints.store_access import opened_store, running_embedded_server

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

    def done(self, path: Path) -> None:
        if self._tty:
            self._stream.write("\n")
        self._stream.write(f"inspilot: wrote {path} ({self.written / 1e6:.1f} MB)\n")


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
    url: str, settings: Settings, params: dict[str, object]
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
    settings: Settings, args: argparse.Namespace, progress: _Progress, uri: str | None = None
) -> AsyncIterator[bytes]:
    study = study_filter(args.username, _iso(args.since, "since"), _iso(args.until, "until"))
    async with opened_store(settings, uri) as repository:
        async for chunk in stream_study(
            repository, study, ExportProgress(on_change=progress.counted)
        ):
            yield chunk


async def _export(settings: Settings, args: argparse.Namespace, progress: _Progress) -> Path:
    out = Path(args.out)
    url = _service_url(settings)
    embedded = running_embedded_server(settings)
    if embedded is not None:
        chunks = _from_storage(settings, args, progress, embedded)
    elif await _service_answers(url):
        params: dict[str, object] = {"username": args.username or []}
        for name in ("since", "until"):
            if getattr(args, name):
                params[name] = getattr(args, name)
        chunks = _from_service(url, settings, params)
    else:
        chunks = _from_storage(settings, args, progress)
    # Written beside the target and renamed at the end: a failed export leaves no half zip.
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("wb") as file:
            async for chunk in chunks:
                file.write(chunk)
                progress.written += len(chunk)
                progress.show()
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def run_export(settings: Settings, args: argparse.Namespace) -> int:
    progress = _Progress(sys.stderr)
    try:
        out = asyncio.run(_export(settings, args, progress))
    except InsPilotError as exc:
        print(f"\ninspilot: export failed: {exc.message}", file=sys.stderr)
        return 1
    progress.done(out)
    return 0
