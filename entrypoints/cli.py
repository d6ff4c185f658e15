"""`inspilot serve`: the service on granian, N workers sharing one database and one SD ledger;
`inspilot generate`: one job for prompt designers, written to a folder."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from entrypoints.observability.logs import configure_logging, startup_error
from entrypoints.open_files import SLACK_REQUESTS, connection_cap, raise_open_file_limit
from entrypoints.settings import PREFIX, Settings, SettingsError

# granian's own loggers (its startup lines, worker management) hand their lines to the
# root handler, so they come out in INSPILOT_LOG_FORMAT like every other line.
GRANIAN_LOGGING: dict[str, Any] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    }
}


def _workers(raw: str) -> int:
    """`--workers`: a whole number of at least 1, or `auto` (one per core)."""
    if raw.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1, or auto")
    return value


def _share_between_workers(settings: Settings, workers: int) -> str | None:
    """What several workers need: one SD ledger and one job board in the database. An
    error, or None."""
    if workers == 1:
        return None
    if settings.storage_backend == "memory":
        return (
            f"--workers {workers}: workers cannot share {PREFIX}STORAGE_BACKEND=memory; "
            "use embedded or mongodb"
        )
    logger = logging.getLogger("inspilot")
    if settings.images_backend == "sd" and settings.sd_ledger == "memory":
        # Each worker owning every GPU would double-book them: the slots go to MongoDB.
        os.environ[f"{PREFIX}SD_LEDGER"] = "mongodb"
        logger.info("%d workers share the SD slots through MongoDB (SD_LEDGER)", workers)
    if settings.jobs_backend == "memory":
        # A job started on one worker must be readable and cancellable on the others.
        os.environ[f"{PREFIX}JOBS_BACKEND"] = "mongodb"
        logger.info("%d workers share the generation jobs through MongoDB (JOBS_BACKEND)", workers)
    return None


def _serve(args: argparse.Namespace) -> int:
    # First: importing granian raises the limit too, and the log should say from what.
    before, after = raise_open_file_limit()
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    from adapters.embedded_mongo import EmbeddedServerKeeper
    from adapters.filesystem_prompts import FilesystemPromptCatalog, TemplateError
    from application.steps import IMAGE_KINDS, IMAGE_POSITIVE, TEXT_STEPS
    from domain.errors import StorageError

    try:
        settings = Settings.load()
    except SettingsError as exc:
        # The format setting itself may be the wrong one: read it raw, json only if clearly asked.
        fmt = os.environ.get(f"{PREFIX}LOG_FORMAT", "").strip().lower()
        print(startup_error(f"configuration error: {exc}", fmt), file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    logger = logging.getLogger("inspilot")
    try:
        # Checked here, where a mistake is one clear line, not a worker's traceback (and
        # without the container: this process only supervises, it should stay small).
        FilesystemPromptCatalog(settings.prompts_dir, TEXT_STEPS, IMAGE_KINDS, IMAGE_POSITIVE)
    except TemplateError as exc:
        logger.error("prompt template error: %s", exc)
        return 2
    problem = _share_between_workers(settings, args.workers)
    if problem is not None:
        logger.error("%s", problem)
        return 2
    logger.info(
        "open files: limit %s (raised from %s); requests open at once: at most %s",
        after,
        before,
        connection_cap(settings.max_connections, after),
    )
    logger.info(
        "backends: text=%s images=%s storage=%s%s, %d worker(s)",
        settings.text_backend,
        settings.images_backend,
        settings.storage_backend,
        f" sd instances={len(settings.sd_instances)}" if settings.images_backend == "sd" else "",
        args.workers,
    )
    for line in study_lines(settings):
        logger.info("%s", line)
    keeper = None
    if settings.storage_backend == "embedded":
        # Started once, here: every worker uses it, and a worker that dies or is
        # replaced never takes the database with it.
        keeper = EmbeddedServerKeeper(settings.data_dir, cache_mb=settings.embedded_cache_mb)
        try:
            uri = keeper.start()
        except StorageError as exc:
            logger.error("InsPilot cannot start: %s", exc.message)
            return 2
        logger.info("embedded MongoDB (SecantusDB, pid %s) at %s", keeper.server.pid, uri)
    try:
        # granian over uvicorn[standard]: measured 1.8-2x the requests per second here
        # (benchmarks/http_load.py).
        Granian(
            "entrypoints.asgi:app_factory",
            factory=True,
            address=args.host or settings.host,
            port=args.port or settings.port,
            interface=Interfaces.ASGI,
            loop=Loops.uvloop,
            workers=args.workers,
            # A worker that dies (killed, out of memory, a crash in a C extension) is
            # replaced; without this granian shut the whole service down.
            respawn_failed_workers=True,
            respawn_interval=1.0,
            # Connection bounds (docs/internet.md): granian reads headers within the header
            # timeout (also the keep-alive idle timeout); the app's ConnectionGuard refuses
            # requests past the cap, so granian admits a few more than the cap to let it.
            http1_settings=HTTP1Settings(header_read_timeout=int(settings.header_timeout_s * 1000)),
            backpressure=connection_cap(settings.max_connections, after) + SLACK_REQUESTS,
            # Thousands of clients connecting at once wait in this queue, not refused.
            backlog=settings.listen_backlog,
            # Last resort only: the app ends its streams and bodies on SIGTERM by itself.
            workers_kill_timeout=math.ceil(settings.shutdown_grace_s) + 5,
            log_level=LogLevels(settings.log_level.lower()),
            log_dictconfig=GRANIAN_LOGGING,
            # The app writes the access lines itself (INSPILOT_ACCESS_LOG), inside the
            # request, so they carry its request id; granian's would not.
            log_access=False,
        ).serve()
    finally:
        if keeper is not None:
            keeper.stop()
    return 0


def study_lines(settings: Settings) -> list[str]:
    """What an operator checks at start: where the data is, and what researchers get."""
    research = "on" if settings.research_token else "off (no INSPILOT_RESEARCH_TOKEN)"
    roster = (
        f"{len(settings.participants)} names" if settings.participants else "open (any username)"
    )
    # The study file arrives with participants and conditions; absent before that.
    study_file = getattr(settings, "study_file", "")
    lines = [
        f"research API {research}; dashboard {research}; roster {roster}; "
        f"study file {Path(study_file).resolve() if study_file else 'none'}"
    ]
    if settings.storage_backend == "embedded":
        lines.insert(0, f"data directory {Path(settings.data_dir).resolve()}")
    return lines


def _command_settings() -> Settings | None:
    """Settings for a one-off command (export, generate), logging warnings only."""
    try:
        settings = Settings.load()
    except SettingsError as exc:
        print(f"inspilot: configuration error: {exc}", file=sys.stderr)
        return None
    configure_logging("WARNING", settings.log_format)
    return settings


def _export(args: argparse.Namespace) -> int:
    from entrypoints.export.command import run_export

    settings = _command_settings()
    return 2 if settings is None else run_export(settings, args)


def _generate(args: argparse.Namespace) -> int:
    from adapters.filesystem_prompts import TemplateError
    from entrypoints.generate_command import generate

    settings = _command_settings()
    if settings is None:
        return 2
    try:
        return generate(args, settings)
    except TemplateError as exc:
        print(f"inspilot: prompt template error: {exc}", file=sys.stderr)
        return 2


def _replay(args: argparse.Namespace) -> int:
    from entrypoints.replay_command import replay

    settings = _command_settings()
    return 2 if settings is None else replay(args, settings)


def _prompts(args: argparse.Namespace) -> int:
    from entrypoints.prompts_command import check

    directory = args.directory
    if directory is None:
        settings = _command_settings()
        if settings is None:
            return 2
        directory = settings.prompts_dir
    return check(directory)


def main(argv: list[str] | None = None) -> int:
    from entrypoints.export.command import add_arguments

    parser = argparse.ArgumentParser(prog="inspilot", description="InsPilot API")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=None, help="address to listen on (default INSPILOT_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default INSPILOT_PORT)")
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="worker processes sharing one database and SD ledger (default 1; auto = cores)",
    )
    export = commands.add_parser(
        "export", help="write the study (CSV tables, sessions, records, pictures) as a zip"
    )
    add_arguments(export)
    from entrypoints.generate_command import add_pipelines

    add_pipelines(commands.add_parser("generate", help="run one generation job into a folder"))
    from entrypoints.prompts_command import add_arguments as add_prompts_arguments

    add_prompts_arguments(commands.add_parser("prompts", help="check a prompt set offline"))
    from entrypoints.replay_command import add_arguments as add_replay_arguments

    add_replay_arguments(
        commands.add_parser("replay", help="run a recorded generation again and compare")
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "export":
        return _export(args)
    if args.command == "generate":
        return _generate(args)
    if args.command == "prompts":
        return _prompts(args)
    if args.command == "replay":
        return _replay(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
