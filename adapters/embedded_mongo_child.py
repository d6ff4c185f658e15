"""The embedded MongoDB-wire server's own process: `python -m adapters.embedded_mongo_child`.

Run by EmbeddedMongoProcess, never by hand. It serves SecantusDB on a loopback port,
prints `READY <port>` on stdout once it accepts connections, logs to stderr (the parent
forwards every line to the service log), and stops cleanly on SIGTERM, SIGINT or when
its parent goes away (stdin closes), so a crashed service never leaves the data
directory locked.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

READY = "READY"


# WiredTiger checkpoints flush the dirty cache; at SecantusDB's default of one a minute,
# each stalled picture writes for seconds (batches of 200 fell from 85 to 51 MB/s). Ten
# seconds spreads the same work into small steps (slowest batch 72 MB/s, measured).
CHECKPOINT_SECONDS = "10"


def _serve(args: argparse.Namespace) -> int:
    os.environ.setdefault("SECANTUS_CHECKPOINT_SECONDS", CHECKPOINT_SECONDS)
    import secantus

    try:
        server: Any = secantus.SecantusDBServer(
            host="127.0.0.1",
            port=args.port,
            storage_path=args.data_dir,
            # Standalone by default: no oplog, so a 1.7 MB picture is written once, not
            # twice. A one-node replica set (tests, benchmarks) has change streams.
            replica_set_name=args.replica_set or None,
            enable_test_commands=False,
            cache_size=f"{args.cache_mb}M",
            # WiredTiger's journal, synced at every commit: without the sync, a write
            # acknowledged less than about a second before a kill of this process was
            # lost (measured). Our writes are few and large, so the sync costs little.
            durable=True,
            sync_on_commit=True,
        )
    except Exception as exc:
        text = str(exc)
        if "busy" in text.lower() or "lock" in text.lower():
            print(f"data directory {args.data_dir} is in use by another server", file=sys.stderr)
            return 3
        print(f"cannot open the data in {args.data_dir}: {text}", file=sys.stderr)
        return 2
    try:
        server.start()
    except OSError as exc:
        server.stop()
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 4
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=_wait_for_parent, args=(stop,), daemon=True).start()
    print(f"{READY} {server.port}", flush=True)
    logging.getLogger("secantus").info("SecantusDB %s serving", secantus.__version__)
    stop.wait()
    _stop(server)
    return 0


def _wait_for_parent(stop: threading.Event) -> None:
    """The parent holds our stdin open; EOF means it is gone."""
    # os.read on the raw descriptor: a buffered reader's lock, held by this thread at
    # interpreter shutdown, made Python abort with a fatal error.
    with contextlib.suppress(OSError):
        while os.read(0, 1024):
            pass
    stop.set()


def _stop(server: Any) -> None:
    # SecantusDB closes its listener without shutdown(), which on Linux leaves the
    # accept thread blocked until a 2 s join timeout; shutdown() wakes it at once.
    listener = getattr(server, "_socket", None)
    if listener is not None:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inspilot-embedded-mongo")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cache-mb", type=int, default=256)
    parser.add_argument("--replica-set", default="")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    return _serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
