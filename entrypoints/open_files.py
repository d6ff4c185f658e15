"""The open-file limit: every connection is a file, and 1,024 is a common soft default.

Start-up raises the soft limit to the hard one (no privilege needed) and logs it; the
connection cap stays below it, with room for the database, logs and pictures, so the
process refuses a connection with a clear answer instead of failing to accept one.
"""

from __future__ import annotations

import resource

RESERVED_FILES = 512
"""Files kept for everything but client connections."""
SLACK_REQUESTS = 64
"""Requests granian admits past the cap, so the guard can refuse them in words."""


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft limit to the hard limit; returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_file_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(max_connections: int, open_files: int | None = None) -> int:
    """INSPILOT_MAX_CONNECTIONS, lowered to what the open-file limit can hold."""
    files = open_file_limit() if open_files is None else open_files
    room = max(16, files - RESERVED_FILES - SLACK_REQUESTS)
    return min(max_connections, room)
