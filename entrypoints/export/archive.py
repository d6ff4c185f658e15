"""The study as a zip, streamed in chunks with bounded memory whatever the study's size.

One participant's session and one generation record are held at a time (the repository
loads them one by one); pictures are fetched one by one; the CSV tables fill spooled
temporary files (memory up to a few MB, then disk) during the single pass over the
records and are copied into the archive at the end. The zip is written to a sink
without seeking (data descriptors), and each chunk leaves as soon as it is made.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import hashlib
import json
import re
import tempfile
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import msgspec

from application.ports import ExperimentRepository, StudyFilter
from domain.errors import InvalidInput
from domain.experiment import Experiment, check_username
from domain.generation import GenerationRecord, sketches_in
from domain.images import decode_data_uri, image_sha256, sniff_image_type
from entrypoints.export import tables
from entrypoints.http.presenters import present_record, present_session

SPOOL_IN_MEMORY = 4 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}


class _Sink:
    """Where zipfile writes: collects bytes until the stream takes them away."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        """zipfile closes only files it opened itself; this makes the sink a writable file."""
        return None

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


@dataclass
class ExportProgress:
    """Counts for a progress line; `on_change` is called after each participant and record."""

    sessions: int = 0
    generations: int = 0
    images: int = 0
    on_change: Callable[[ExportProgress], None] | None = field(default=None, repr=False)

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)


def study_filter(
    usernames: list[str] | None,
    since: datetime | None,
    until: datetime | None,
    conditions: list[str] | None = None,
) -> StudyFilter:
    """The export's filters, checked; a time without a zone is taken as UTC."""

    def aware(value: datetime | None) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)

    since, until = aware(since), aware(until)
    if since is not None and until is not None and since >= until:
        raise InvalidInput("until", "must be later than since")
    names = frozenset(check_username(name) for name in usernames) if usernames else None
    chosen = frozenset(conditions) if conditions else None
    return StudyFilter(names, since, until, chosen)


FOLDER_SLUG_BYTES = 60


def folder_name(username: str) -> str:
    """A username as one archive folder: a readable slug plus a short hash of the exact name.

    Unique (the hash), at most 71 bytes (768-byte names broke unzip), safe on every file
    system (letters, Chinese included, and digits; anything else becomes `-`), and
    `Alice` and `alice` never meet on a case-insensitive one (their hashes differ). The
    real username stays in the CSVs and `session.json`.
    """
    slug = re.sub(r"-{2,}", "-", "".join(c.lower() if c.isalnum() else "-" for c in username))
    slug = slug.strip("-").encode("utf-8")[:FOLDER_SLUG_BYTES].decode("utf-8", "ignore")
    digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{slug}-{digest}" if slug else digest


def _json(value: Any) -> bytes:
    # msgspec turns the presenters' Structs (the session's wire shape) into plain JSON values.
    plain = msgspec.to_builtins(value, builtin_types=(datetime,))
    return json.dumps(plain, ensure_ascii=False, indent=1, default=str).encode("utf-8")


def _sketch(scheme: Any) -> tuple[bytes, str] | None:
    """The sketch's picture and its extension, when the scheme carries a decodable one."""
    image = scheme.get("canvasImage") if isinstance(scheme, dict) else None
    if not isinstance(image, str) or not image.startswith("data:image/"):
        return None
    try:
        data = base64.b64decode(image.partition(",")[2], validate=False)
    except (binascii.Error, ValueError):
        return None
    kind = sniff_image_type(data)
    return (data, _EXTENSIONS[kind]) if kind else None


class _Archive:
    def __init__(self, created: datetime) -> None:
        self.sink = _Sink()
        self.zip = zipfile.ZipFile(self.sink, "w")
        self._date_time = created.astimezone(UTC).timetuple()[:6]

    def _info(self, path: str, compress: bool) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=self._date_time)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        return info

    async def add(self, path: str, data: bytes, *, compress: bool = True) -> bytes:
        # Compressing megabytes of sketches would stall the event loop: do it on a thread.
        await asyncio.to_thread(self.zip.writestr, self._info(path, compress), data)
        return self.sink.drain()

    async def add_file(self, path: str, source: IO[bytes]) -> AsyncIterator[bytes]:
        info = self._info(path, True)
        info.file_size = source.seek(0, 2)  # tells zipfile whether the entry needs ZIP64
        source.seek(0)
        with self.zip.open(info, "w") as target:
            while chunk := await asyncio.to_thread(source.read, COPY_CHUNK):
                await asyncio.to_thread(target.write, chunk)
                yield self.sink.drain()
        yield self.sink.drain()

    def close(self) -> bytes:
        self.zip.close()
        return self.sink.drain()


class _Tables:
    """One spooled CSV per table, filled row by row during the pass over the study."""

    def __init__(self) -> None:
        self.files: dict[str, IO[bytes]] = {}
        self._writers: dict[str, Any] = {}
        self._texts: dict[str, Any] = {}
        for table in tables.TABLES:
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
            text = _Utf8(spool)
            writer = csv.writer(text, lineterminator="\r\n")
            writer.writerow(table.columns)
            self.files[table.name], self._writers[table.name] = spool, writer

    def row(self, table: tables.Table, values: list[Any]) -> None:
        self._writers[table.name].writerow([tables.safe_cell(value) for value in values])

    def close(self) -> None:
        for spool in self.files.values():
            spool.close()


class _Utf8:
    """A text face for csv.writer over a binary spool (which has no text mode of its own)."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target

    def write(self, text: str) -> int:
        return self._target.write(text.encode("utf-8", "surrogatepass"))


async def _session_entries(
    archive: _Archive, experiment: Experiment, rows: _Tables, progress: ExportProgress
) -> AsyncIterator[bytes]:
    rows.row(tables.SESSIONS, tables.session_row(experiment))
    progress.sessions += 1
    folder = f"participants/{folder_name(experiment.username)}"
    yield await archive.add(
        f"{folder}/session.json", _json(present_session(experiment, with_times=True))
    )
    for stage, name in tables.STAGE_FILES.items():
        for number, scheme in enumerate(experiment.schemes_of(stage), 1):
            sketch = _sketch(scheme)
            if sketch is not None:
                data, extension = sketch
                path = f"{folder}/sketches/{name}-{number}.{extension}"
                yield await archive.add(path, data, compress=False)


def _picture_path(folder: str, name: str, data: bytes) -> str:
    return f"{folder}/{name}.{_EXTENSIONS.get(sniff_image_type(data) or '', 'png')}"


async def _input_sketches(
    archive: _Archive, record: GenerationRecord, written: set[str], files: list[str]
) -> AsyncIterator[bytes]:
    """Each sketch the run was sent, as `inputs/<sha256>.png`, written once per export
    however many records sent it; `files` gets the record's paths in input order."""
    for value in sketches_in(record.inputs):
        data = decode_data_uri(value)
        if data is None:
            continue
        path = _picture_path("inputs", image_sha256(data), data)
        files.append(path)
        if path not in written:
            written.add(path)
            yield await archive.add(path, data, compress=False)


async def _record_entries(
    archive: _Archive,
    record: GenerationRecord,
    repository: ExperimentRepository,
    rows: _Tables,
    progress: ExportProgress,
    written: set[str],
) -> AsyncIterator[bytes]:
    images = 0
    pictures: dict[str, str] = {}
    for step in record.image_steps:
        file = ""
        data = None if step.error else await repository.get_image(record.id, step.id)
        if data is not None:
            file = _picture_path(f"images/{record.id}", step.id, data)
            pictures[step.id] = file
            yield await archive.add(file, data, compress=False)
            images += 1
            progress.images += 1
        rows.row(tables.IMAGES, tables.image_row(record, step, file))
    for text_step in record.text_steps:
        rows.row(tables.TEXT_STEPS, tables.text_step_row(record, text_step))
    for shown in record.stimuli:
        rows.row(tables.STIMULI, tables.stimulus_row(record, shown, pictures))
    sketch_files: list[str] = []
    async for chunk in _input_sketches(archive, record, written, sketch_files):
        yield chunk
    rows.row(tables.GENERATIONS, tables.generation_row(record, images, sketch_files))
    yield await archive.add(f"records/{record.id}.json", _json(present_record(record)))


async def stream_study(
    repository: ExperimentRepository,
    study: StudyFilter,
    progress: ExportProgress | None = None,
    now: datetime | None = None,
) -> AsyncIterator[bytes]:
    """The archive's bytes, chunk by chunk (see the module docstring for the layout)."""
    progress = progress or ExportProgress()
    created = now or datetime.now(UTC)
    archive = _Archive(created)
    rows = _Tables()
    try:
        yield await archive.add("datapackage.json", _json(tables.datapackage(created)))
        participants: set[str] = set()
        async for experiment in repository.iter_sessions(study):
            participants.add(experiment.username)
            async for chunk in _session_entries(archive, experiment, rows, progress):
                yield chunk
            progress.changed()
        written: set[str] = set()
        missing: set[str] = set()
        async for record in repository.iter_generations(study):
            async for chunk in _record_entries(
                archive, record, repository, rows, progress, written
            ):
                yield chunk
            if record.username and record.username not in participants:
                missing.add(record.username)
            progress.generations += 1
            progress.changed()
        # Every generation's participant is in sessions.csv (its foreign key): the
        # session of one that saved outside the time window, or a bare row for one who
        # generated without ever starting a session.
        for username in sorted(missing):
            stored = await repository.get(username)
            if stored is None:
                rows.row(tables.SESSIONS, tables.bare_session_row(username))
                continue
            async for chunk in _session_entries(archive, stored, rows, progress):
                yield chunk
        for table in tables.TABLES:
            async for chunk in archive.add_file(table.path, rows.files[table.name]):
                yield chunk
        yield archive.close()
    finally:
        rows.close()
