"""glibc's allocator tuned for a process that passes 2 MB pictures through worker threads."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger("inspilot")

# mallopt parameters, from glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Above a picture (2.4 MB of base64) and below a reply (14 MB): pictures reuse heap memory
# without page faults, replies and whole sessions go back to the system when freed.
MMAP_THRESHOLD = 4 * 1024 * 1024
ARENA_MAX = 2


def return_large_buffers_to_the_system() -> None:
    """Make freed pictures leave the process.

    Pictures pass through as 1.8-2.4 MB buffers, in worker threads, and replies as 14 MB
    ones. glibc raises its mmap threshold after the first large buffer is freed and gives
    each thread an arena of its own, so the heap kept growing under load. A fixed
    threshold (4 MB) and two arenas bound it. Measured on benchmarks/load.py, three rounds
    of 72 pictures: glibc's defaults 460-526 MB and growing; a 256 KB threshold 285 MB but
    rounds 2% slower (every picture buffer page-faulted afresh); 4 MB: 336-350 MB at full
    speed. The settings also go into the environment, for the processes this one starts
    (the database). On another C library this does nothing.
    """
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    os.environ.setdefault("MALLOC_ARENA_MAX", str(ARENA_MAX))
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_ARENA_MAX, ARENA_MAX)):
        logger.warning("memory: glibc refused the allocator settings")
