"""Settings: how `inspilot serve` listens and what one connection may hold."""

from __future__ import annotations

from dataclasses import dataclass

from entrypoints.settings.parsing import (
    _list,
    _networks,
    _port,
    _positive_float,
    _positive_int,
    _setting,
    _text,
)


@dataclass(frozen=True)
class ServerSettings:
    """How `inspilot serve` listens and what one connection may hold."""

    host: str = _setting(
        "127.0.0.1", _text, "Address `inspilot serve` listens on (`--host` overrides)."
    )
    port: int = _setting("8000", _port, "Port `inspilot serve` listens on (`--port` overrides).")
    cors_origins: tuple[str, ...] = _setting(
        "http://localhost:3000,http://127.0.0.1:3000",
        _list,
        "Comma-separated front-end origins allowed by CORS.",
    )
    max_body_mb: int = _setting("64", _positive_int, "Largest request body accepted, in MB.")
    trusted_proxies: tuple[str, ...] = _setting(
        "",
        _networks,
        "Comma-separated addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-For and X-Forwarded-Proto are believed.",
    )
    max_connections: int = _setting(
        "16000",
        _positive_int,
        "Requests held open at once (slow bodies, event streams, generations); beyond it a "
        "503 at once. Capped below the open-file limit, which start-up raises to its hard limit.",
    )
    listen_backlog: int = _setting(
        "4096",
        _positive_int,
        "Connections the system queues for the service before it accepts them (the listen "
        "backlog; the kernel caps it at net.core.somaxconn). granian's own default is 1024.",
    )
    header_timeout_s: float = _setting(
        "15",
        _positive_float,
        "Longest wait for a request's headers, on a new connection and between requests on a "
        "kept-alive one (granian's header read timeout, also the keep-alive idle timeout).",
    )
    body_timeout_s: float = _setting(
        "30", _positive_float, "A request body that sends nothing for this long is cut (408)."
    )
    sse_per_job: int = _setting(
        "64", _positive_int, "Event streams (/api/v1/jobs/{id}/events) open on one job (more: 429)."
    )
    sse_max: int = _setting("8192", _positive_int, "Event streams open in all (more: 429).")
    max_inflight_mb: int = _setting(
        "512",
        _positive_int,
        "Request bodies in flight at once, in MB (declared sizes); a body that would pass it "
        "waits 2 s for room, then gets 503 with Retry-After.",
    )
    max_saving_mb: int = _setting(
        "128",
        _positive_int,
        "Session saves decoded and stored at once, in MB of their bodies; more wait their "
        "turn holding only their body (a save costs about 3.5 times its size meanwhile).",
    )
