"""`inspilot generate`: run one job on the configured models and write what it made to a folder.

For prompt designers: try templates without the front end. Options come from the
pipeline's inputs (`--design-task`, `--design-texts` once per note, sketches as file
paths, a list of schemes as one JSON object per `--schemes`), progress shows on the
terminal, and the result lands in `DIR/result.json` with `DIR/<step id>.png` beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any, TextIO, get_args, get_origin

import msgspec

from application.generation_run import ProgressSink
from application.pipeline import PipelineResult, pictures_of
from domain.errors import InsPilotError
from domain.experiment import new_id
from domain.generation import Source
from domain.images import sniff_image_type
from domain.progress import ImageProgress, JobEnded, JobStatus, StepProgress, StepStatus
from entrypoints.command_storage import command_storage
from entrypoints.observability.logs import request_id_var
from entrypoints.pipelines.base import PipelineEntry, limits_of
from entrypoints.pipelines.registry import PIPELINES, by_name
from entrypoints.settings import Settings
from entrypoints.wire import FieldPath, convert_struct

BAR_WIDTH = 30


def _is_sketch(annotation: Any) -> bool:
    return any(
        isinstance(meta, msgspec.Meta) and (meta.extra or {}).get("sketch")
        for meta in getattr(annotation, "__metadata__", ())
    )


def _nested(annotation: Any) -> type[msgspec.Struct] | None:
    """The Struct of a `list[Struct]` field, if it is one."""
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        if isinstance(item, type) and issubclass(item, msgspec.Struct):
            return item
    return None


def add_pipelines(parser: argparse.ArgumentParser) -> None:
    """One sub-command per registered pipeline, its options read off its inputs Struct."""
    pipelines = parser.add_subparsers(dest="pipeline", required=True)
    for entry in PIPELINES:
        command = pipelines.add_parser(entry.pipeline.value, help=f"run {entry.pipeline.value}")
        for info in msgspec.structs.fields(entry.inputs):
            option = "--" + info.name.replace("_", "-")
            required = (
                info.default is msgspec.NODEFAULT and info.default_factory is msgspec.NODEFAULT
            )
            nested = _nested(info.type)
            if nested is not None:
                keys = ", ".join(f.name for f in msgspec.structs.fields(nested))
                hint = f"one JSON object per item ({keys}); sketches as file paths"
                command.add_argument(option, action="append", required=required, help=hint)
            elif get_origin(info.type) is list:
                command.add_argument(option, action="append", default=[], help="repeatable")
            elif _is_sketch(info.type):
                command.add_argument(option, default=None, help="sketch image file (PNG or JPEG)")
            elif _takes_int(info.type):
                command.add_argument(option, required=required, type=_number_or_text)
            else:
                command.add_argument(option, required=required)
        command.add_argument("--username", default=None, help="recorded with the generation")
        command.add_argument(
            "--condition",
            default=None,
            help="the study condition to run in (default: the "
            "participant's, else the study's first)",
        )
        command.add_argument("--out", required=True, type=Path, help="folder for the result")


def _takes_int(annotation: Any) -> bool:
    return annotation is int or int in get_args(annotation)


def _number_or_text(value: str) -> int | str:
    """A whole number as a number, as a JSON client sends it (`--scheme-id 0` is 0, not
    "0"); anything else stays text for the pipeline's own rule to judge."""
    try:
        return int(value)
    except ValueError:
        return value


def _data_uri(path: str, option: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InsPilotError(
            f"{option}: cannot read sketch file '{path}' ({exc.strerror})"
        ) from None
    kind = sniff_image_type(data) or "image/png"
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def _with_sketches(
    values: dict[str, Any], kind: type[msgspec.Struct], where: str
) -> dict[str, Any]:
    """Sketch fields hold file paths on the command line; the pipelines take data URIs."""
    loaded = dict(values)
    for info in msgspec.structs.fields(kind):
        value = loaded.get(info.name)
        if value and _is_sketch(info.type):
            loaded[info.name] = _data_uri(value, f"{where}{info.name}")
        nested = _nested(info.type)
        if nested is not None and isinstance(value, list):
            loaded[info.name] = [
                _with_sketches(item, nested, f"{info.name}[{index}].")
                if isinstance(item, dict)
                else item
                for index, item in enumerate(value)
            ]
    return loaded


def _inputs(entry: PipelineEntry, args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for info in msgspec.structs.fields(entry.inputs):
        value = getattr(args, info.name)
        if value is None:
            continue
        if _nested(info.type) is not None:
            try:
                value = [json.loads(item) for item in value]
            except json.JSONDecodeError as exc:
                raise InsPilotError(
                    f"{info.name}: each item must be a JSON object ({exc})"
                ) from None
        values[info.name] = value
    return _with_sketches(values, entry.inputs, "")


class Progress:
    """One line per step as it ends; a bar for the pictures, redrawn in place on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._bar = ""

    def show(self, event: Any) -> None:
        if isinstance(event, StepProgress) and event.status is not StepStatus.STARTED:
            mark = "ok" if event.status is StepStatus.FINISHED else "failed"
            self._line(f"{event.step}  attempt {event.attempt}  {mark}  {event.seconds:.1f} s")
        elif isinstance(event, ImageProgress):
            filled = BAR_WIDTH * event.done // max(event.total, 1)
            self._bar = (
                f"pictures [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {event.done}/{event.total}"
            )
            if self._live:
                self._stream.write(f"\r{self._bar}")
            else:
                self._stream.write(f"{self._bar}\n")
            self._stream.flush()

    def _line(self, text: str) -> None:
        if self._live and self._bar:
            self._stream.write("\r\x1b[K")
        self._stream.write(text + "\n")
        if self._live and self._bar:
            self._stream.write(self._bar)
        self._stream.flush()

    def close(self) -> None:
        if self._live and self._bar:
            self._stream.write("\n")


def _write(result: PipelineResult, entry: PipelineEntry, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    reply = entry.present(result, lambda item: f"{item.image_id}.png")
    (out / "result.json").write_bytes(msgspec.json.format(msgspec.json.encode(reply), indent=2))
    pictures = pictures_of(result)
    for step_id, data in pictures.items():
        (out / f"{step_id}.png").write_bytes(data)
    return len(pictures)


async def _run(args: argparse.Namespace, settings: Settings, stream: TextIO) -> int:
    from entrypoints.container import build_container
    from entrypoints.lifecycle import running

    entry = by_name(args.pipeline)
    inputs = convert_struct(_inputs(entry, args), entry.inputs)
    command = entry.build(inputs, limits_of(settings), FieldPath(""), args.username)
    storage = command_storage(settings)
    print(f"inspilot: data: {storage.describe()}", file=stream)
    # One process per embedded data directory: beside a running service, the record is
    # written through its database process.
    container = build_container(storage.reading_settings())
    container.prompts()
    # The run's record carries a request id like any other, to find its log lines.
    request_id_var.set(f"cli-{new_id()}")
    async with running(container):
        context = await container.run_contexts().for_request(
            username=args.username, evidence=entry.evidence(inputs), condition=args.condition
        )
        use_case = entry.use_case(container.gateway().bound(context))
        # The run's result, whole: the job service keeps a done job's pictures in the store.
        results: list[PipelineResult] = []

        async def work(progress: ProgressSink) -> PipelineResult:
            results.append(await use_case.execute(command, progress))
            return results[-1]

        job = container.jobs().submit(entry.pipeline, args.username, work, source=Source.CLI)
        progress = Progress(stream)
        async for event in job.follow():
            if isinstance(event, JobEnded):
                progress.close()
            else:
                progress.show(event)
    if job.status is not JobStatus.DONE:
        message = job.error.message if isinstance(job.error, InsPilotError) else repr(job.error)
        print(f"inspilot: the job {job.status.value}: {message}", file=sys.stderr)
        return 1
    count = _write(results[-1], entry, args.out)
    print(
        f"wrote {args.out.resolve() / 'result.json'} and {count} pictures; "
        f"record {job.generation_id}",
        file=stream,
    )
    return 0


def generate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_run(args, settings, sys.stderr))
    except InsPilotError as exc:
        print(f"inspilot: {exc.message}", file=sys.stderr)
        return 2
