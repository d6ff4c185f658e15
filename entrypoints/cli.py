"""`inspilot serve`: the service on granian, one worker (the model pools are one per service);
`inspilot generate`: one job for prompt designers, written to a folder."""

from __future__ import annotations

import argparse
import logging
import sys

from entrypoints.settings import Settings, SettingsError


def _serve(args: argparse.Namespace) -> int:
    from granian import Granian

    from adapters.filesystem_prompts import TemplateError
    from entrypoints.asgi import configure_logging
    from entrypoints.container import build_container

    try:
        settings = Settings.load()
        # Checked here, where a mistake is one clear line, not a worker's traceback.
        build_container(settings).prompts()
    except SettingsError as exc:
        print(f"inspilot: configuration error: {exc}", file=sys.stderr)
        return 2
    except TemplateError as exc:
        print(f"inspilot: prompt template error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    logging.getLogger("inspilot").info(
        "backends: text=%s images=%s storage=%s%s",
        settings.text_backend,
        settings.images_backend,
        settings.storage_backend,
        f" sd instances={len(settings.sd_instances)}" if settings.images_backend == "sd" else "",
    )
    # granian over uvicorn[standard]: measured 1.8-2x the requests per second here
    # (benchmarks/http_load.py). One worker: the model pools are one per service.
    Granian(
        "entrypoints.asgi:app_factory",
        factory=True,
        address=args.host or settings.host,
        port=args.port or settings.port,
        interface="asgi",
        loop="uvloop",
        workers=1,
        log_level=settings.log_level.lower(),
        log_access=settings.access_log,
    ).serve()
    return 0


def _generate(args: argparse.Namespace) -> int:
    from adapters.filesystem_prompts import TemplateError
    from entrypoints.generate_command import generate

    try:
        settings = Settings.load()
    except SettingsError as exc:
        print(f"inspilot: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return generate(args, settings)
    except TemplateError as exc:
        print(f"inspilot: prompt template error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inspilot", description="InsPilot API")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=None, help="address to listen on (default INSPILOT_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default INSPILOT_PORT)")
    from entrypoints.generate_command import add_pipelines

    add_pipelines(commands.add_parser("generate", help="run one generation job into a folder"))
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "generate":
        return _generate(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
