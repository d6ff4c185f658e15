"""The key that signs participant cookies: `INSPILOT_SECRET_KEY`, else one generated once
and kept in the data directory (mode 0600), so a restart keeps cookies valid."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

logger = logging.getLogger("inspilot.secret_key")

KEY_FILE = "secret-key"


def signing_key(configured: str, data_dir: str | Path, *, ephemeral: bool = False) -> bytes:
    """`ephemeral` (in-memory storage): a fresh key per process, as the data is too."""
    if configured:
        return configured.encode("utf-8")
    if ephemeral:
        return secrets.token_bytes(48)
    path = Path(data_dir).expanduser() / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        # O_EXCL: of two processes starting at once, one writes and both read its key.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key)
    logger.info("generated the cookie signing key in %s", path)
    return key.encode("ascii")
