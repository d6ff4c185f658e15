"""One Stable Diffusion instance: its address, credentials, health and counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from application.durations import (
    RENDER_BUCKETS_S,
    WAIT_BUCKETS_S,
    DurationBuckets,
    DurationCounts,
)


@dataclass(frozen=True)
class Endpoint:
    """A base URL without credentials (safe to log) and the basic auth taken out of it."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def auth(self) -> tuple[str, str] | None:
        if self.username is None:
            return None
        return (self.username, self.password or "")


def parse_endpoint(raw: str) -> Endpoint:
    """Split `http://user:pass@host:port/prefix` into a loggable URL and credentials."""
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) base URL: {_redact(raw)!r}")
    host = parts.hostname
    if ":" in host:  # IPv6 literals lose their brackets in .hostname
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    if parts.username is None:
        return Endpoint(url)
    return Endpoint(url, unquote(parts.username), unquote(parts.password or ""))


def _redact(raw: str) -> str:
    """Keep a bad URL readable in the error without leaking its password."""
    scheme, sep, rest = raw.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


@dataclass(frozen=True)
class InstanceStats:
    """A snapshot of one instance, for logs now and for the metrics endpoint later."""

    instance: str
    healthy: bool
    slots: int
    busy: int
    jobs: int
    failures: int
    cancelled: int
    busy_s: float
    queue_wait_total_s: float
    queue_wait_max_s: float
    consecutive_failures: int
    cooldown_remaining_s: float
    last_error: str | None
    # Running estimate of one render (seconds); None until one has been timed.
    render_s: float | None = None
    # Slot hold times and waits for a slot, counted into buckets (for histograms).
    render_counts: DurationCounts | None = None
    wait_counts: DurationCounts | None = None


@dataclass(frozen=True)
class PoolStats:
    """Every instance plus the pool-wide queue, taken at the same instant."""

    queue_length: int
    outage: bool
    instances: tuple[InstanceStats, ...]


@dataclass(eq=False)
class Instance:
    """Mutable state of one instance; only the pool (on the event loop) changes it."""

    endpoint: Endpoint
    slots: int
    # Its place in the configured list, from 1: the name clients see ("SD instance 2"),
    # where the URL, an internal address, is kept for the log and the records.
    number: int = 0
    healthy: bool = False
    busy: int = 0
    # Monotonic time of the last release: the pool prefers the instance idle longest.
    idle_since: float = 0.0
    cooldown_until: float = 0.0
    consecutive_failures: int = 0
    jobs: int = 0
    failures: int = 0
    cancelled: int = 0
    busy_s: float = 0.0
    queue_wait_total_s: float = 0.0
    queue_wait_max_s: float = 0.0
    last_error: str | None = None
    # Running estimate of one render here (seconds), and when each busy slot's job began.
    render_s: float | None = None
    running: list[float] = field(default_factory=list)
    render_durations: DurationBuckets = field(
        default_factory=lambda: DurationBuckets(RENDER_BUCKETS_S)
    )
    wait_durations: DurationBuckets = field(default_factory=lambda: DurationBuckets(WAIT_BUCKETS_S))

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def label(self) -> str:
        return f"SD instance {self.number}" if self.number else "SD instance"

    @property
    def free(self) -> bool:
        return self.healthy and self.busy < self.slots

    def snapshot(self, now: float) -> InstanceStats:
        return InstanceStats(
            instance=self.url,
            healthy=self.healthy,
            slots=self.slots,
            busy=self.busy,
            jobs=self.jobs,
            failures=self.failures,
            cancelled=self.cancelled,
            busy_s=round(self.busy_s, 6),
            queue_wait_total_s=round(self.queue_wait_total_s, 6),
            queue_wait_max_s=round(self.queue_wait_max_s, 6),
            consecutive_failures=self.consecutive_failures,
            cooldown_remaining_s=0.0 if self.healthy else max(0.0, self.cooldown_until - now),
            last_error=self.last_error,
            render_s=None if self.render_s is None else round(self.render_s, 3),
            render_counts=self.render_durations.snapshot(),
            wait_counts=self.wait_durations.snapshot(),
        )
