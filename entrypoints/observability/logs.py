"""Log lines an operator can search: text or one JSON object per line, with the request id.

One handler on the root logger formats every line the process writes: ours, granian's
(its loggers are told to propagate here) and the libraries'.
The request id lives in a context variable the request layer sets, so any line logged
while a request is handled carries it, whatever module wrote it.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

request_id_var: ContextVar[str | None] = ContextVar("inspilot_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
# Libraries that log a line per model call at INFO (httpx: "HTTP Request: POST ...").
CHATTY_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "pymongo")


def current_request_id() -> str | None:
    return request_id_var.get()


class RequestIdFilter(logging.Filter):
    """Stamps every record with the id of the request being handled (or "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):  # structured extras, e.g. the access line's status
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str, fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """Route every logger through one handler; calling again replaces the handler it made."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "inspilot", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.inspilot = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    # A study's thousands of model calls log nothing at INFO.
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
    return handler


def startup_error(message: str, fmt: str) -> str:
    """A line for errors met before logging is set up (a bad setting), in the chosen format."""
    if fmt != "json":
        return f"inspilot: {message}"
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    line = {"time": now, "level": "error", "logger": "inspilot", "message": message}
    return json.dumps(line, ensure_ascii=False)
