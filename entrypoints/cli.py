"""`inspilot serve`: run the service in one process (the model pools are one per service)."""

from __future__ import annotations

import argparse
import logging
import sys

from entrypoints.settings import Settings, SettingsError

# Libraries that log a line per model call at INFO (httpx: "HTTP Request: POST ...").
CHATTY_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "pymongo")


def quiet_chatty_libraries() -> None:
    """A study makes thousands of model calls: their lines would drown the service's own."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.root.level))


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from adapters.filesystem_prompts import TemplateError
    from entrypoints.container import build_container
    from entrypoints.http.app import create_app

    try:
        settings = Settings.load()
    except SettingsError as exc:
        print(f"inspilot: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app = create_app(build_container(settings))
    except TemplateError as exc:
        print(f"inspilot: prompt template error: {exc}", file=sys.stderr)
        return 2
    # After create_app: Litestar's logging configuration is applied there.
    quiet_chatty_libraries()
    logging.getLogger("inspilot").info(
        "backends: text=%s images=%s storage=%s%s",
        settings.text_backend,
        settings.images_backend,
        settings.storage_backend,
        f" sd instances={len(settings.sd_instances)}" if settings.images_backend == "sd" else "",
    )
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        # uvicorn[standard]: uvloop and httptools, measured faster here than asyncio and h11.
        loop="auto",
        http="auto",
        workers=1,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inspilot", description="InsPilot API")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=None, help="address to listen on (default INSPILOT_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default INSPILOT_PORT)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
