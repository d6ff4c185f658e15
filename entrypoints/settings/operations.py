"""Settings: logs, the research token and the dashboard, shutdown."""

from __future__ import annotations

from dataclasses import dataclass

from entrypoints.settings.parsing import (
    _choice,
    _flag,
    _log_level,
    _non_negative_float,
    _positive_float,
    _setting,
    _text,
)


@dataclass(frozen=True)
class OperationsSettings:
    """Logs, the research token and the dashboard, shutdown."""

    log_level: str = _setting("info", _log_level, "debug, info, warning or error.")
    log_format: str = _setting(
        "text",
        _choice("text", "json"),
        "text, or json: one JSON object per line for every line the service writes.",
    )
    access_log: bool = _setting(
        "false", _flag, "Log one line per HTTP request, with its request id (inspilot.access)."
    )
    research_token: str = _setting(
        "",
        _text,
        "Bearer token of the researchers' read-only API under /api/v1 (empty: the API is off).",
        secret=True,
    )
    dashboard_session_h: float = _setting(
        "12", _positive_float, "Hours a dashboard login lasts (logout ends it at once)."
    )
    shutdown_grace_s: float = _setting(
        "30", _non_negative_float, "On SIGTERM, longest wait for queued records to be written."
    )
