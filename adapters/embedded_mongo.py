"""The embedded MongoDB-wire server (SecantusDB) in a child process, and the repository on it.

Why a child process: in-process, the server's storage threads shared the service's GIL
and memory (10 GB after three rounds of real-size pictures, 109 threads at shutdown).
Alone, it is capped by its WiredTiger cache and the service stays responsive.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from adapters.embedded_mongo_child import READY
from adapters.mongo import MongoExperimentRepository
from domain.errors import StorageError

logger = logging.getLogger("inspilot.storage")
child_logger = logging.getLogger("inspilot.storage.embedded")

DISCOVERY_FILE = "embedded-server.json"
_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 20.0
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


# glibc's allocator in the database child, unless the operator set these. The server
# handles each connection on a thread of its own and copies every message (up to 48 MB)
# through Python bytes: with the defaults, each thread got an arena of its own and the
# mmap threshold rose to 32 MB after the first large free, so multi-megabyte buffers
# came from arenas that never shrank. 20 concurrent 60 MB saves left the child at 1 GB
# with a 256 MB cache (4.2 GB in the report of issue 14); with two arenas and a fixed
# 128 KB threshold, large buffers are mapped and unmapped on their own: 272 MB after.
CHILD_ALLOCATOR = {
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": str(128 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(128 * 1024),
}


def _uri(port: int) -> str:
    # directConnection: one server, never a replica-set discovery.
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _discovery(data_dir: str) -> dict[str, int] | None:
    try:
        found = json.loads((Path(data_dir) / DISCOVERY_FILE).read_text(encoding="utf-8"))
        return {key: int(found[key]) for key in ("port", "pid", "service_pid")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_server_uri(data_dir: str) -> str | None:
    """The URI of the embedded server a running service keeps on `data_dir`, if any.

    Lets other commands (the study export) read the data while `inspilot serve` runs:
    WiredTiger allows one process per data directory, so they must go through it.
    """
    found = _discovery(data_dir)
    if found is None:
        return None
    port, pid = found["port"], found["pid"]
    return _uri(port) if _alive(pid) and _answers(port) else None


def parents_server_uri(data_dir: str) -> str | None:
    """The embedded server this process's parent keeps (`inspilot serve`'s main process
    starts it once for all its workers), if any."""
    found = _discovery(data_dir)
    if found is None or found["service_pid"] != os.getppid():
        return None
    return running_server_uri(data_dir)


class EmbeddedMongoProcess:
    """Starts, watches and stops one SecantusDB child process on a loopback port.

    Restarts reuse the first port, so clients reconnect on their own. Blocking calls:
    use from a worker thread in async code.
    """

    def __init__(
        self, data_dir: str, *, port: int = 0, cache_mb: int = 256, replica_set: str = ""
    ) -> None:
        self._data_dir = Path(data_dir)
        self._port = port
        self._cache_mb = cache_mb
        # A one-node replica set (change streams, an oplog) instead of a standalone server.
        self._replica_set = replica_set
        self._process: subprocess.Popen[bytes] | None = None
        self._log_threads: list[threading.Thread] = []

    @property
    def uri(self) -> str:
        if self._process is None:
            raise StorageError("storage: the embedded MongoDB server is not started")
        return _uri(self._port)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def exited(self) -> int | None:
        """The child's exit code once it has died, else None."""
        return None if self._process is None else self._process.poll()

    def start(self) -> str:
        """Starts the child and returns its URI once it accepts connections."""
        if self._process is not None and self._process.poll() is None:
            return self.uri
        if importlib.util.find_spec("secantus") is None:
            # SecantusDB is beta and GPL-2.0: an optional extra, needed only by this backend.
            raise StorageError(
                "storage: the embedded MongoDB server needs SecantusDB: "
                "pip install -e '.[embedded]'"
            )
        self._data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **CHILD_ALLOCATOR,
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")])
            ),
        }
        command = [
            sys.executable, "-m", "adapters.embedded_mongo_child",
            "--data-dir", str(self._data_dir),
            "--port", str(self._port),
            "--cache-mb", str(self._cache_mb),
            "--replica-set", self._replica_set,
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        assert process.stdout is not None and process.stderr is not None
        errors: list[str] = []
        stderr_thread = self._forward(process.stderr, errors)
        port = self._await_ready(process)
        if port is None:
            process.kill()
            process.wait()
            stderr_thread.join(timeout=2)
            detail = errors[-1] if errors else f"exit code {process.returncode}"
            raise StorageError(f"storage: the embedded MongoDB server did not start: {detail}")
        self._forward(process.stdout, [])
        self._process, self._port = process, port
        self._write_discovery()
        return self.uri

    def _await_ready(self, process: subprocess.Popen[bytes]) -> int | None:
        assert process.stdout is not None
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                return None
            text = line.decode("utf-8", "replace").strip()
            if text.startswith(READY):
                return int(text.split()[1])
            child_logger.info("%s", text)
        return None

    def _forward(self, stream: IO[bytes], errors: list[str]) -> threading.Thread:
        """Every line the child writes reaches the service log, at the child's level."""

        def pump() -> None:
            for raw in stream:
                text = raw.decode("utf-8", "replace").rstrip()
                if not text:
                    continue
                level_name = text.split(" ", 1)[0]
                level = _LEVELS.get(level_name, logging.WARNING)
                if level_name in _LEVELS:
                    text = text.split(" ", 1)[1] if " " in text else ""
                errors.append(text)
                del errors[:-5]
                child_logger.log(level, "%s", text)

        thread = threading.Thread(target=pump, daemon=True, name="embedded-mongo-log")
        thread.start()
        self._log_threads.append(thread)
        return thread

    def _write_discovery(self) -> None:
        assert self._process is not None
        found = {"port": self._port, "pid": self._process.pid, "service_pid": os.getpid()}
        path = self._data_dir / DISCOVERY_FILE
        path.write_text(json.dumps(found), encoding="utf-8")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            (self._data_dir / DISCOVERY_FILE).unlink(missing_ok=True)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.error("embedded MongoDB server ignored SIGTERM: killed")
                process.kill()
                process.wait()
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        for thread in self._log_threads:
            thread.join(timeout=2)
        self._log_threads.clear()

    def kill(self) -> None:
        """Kill the child without stopping it cleanly: a wedged server, or a test of restarts."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedMongoExperimentRepository(MongoExperimentRepository):
    """The production Mongo adapter on an embedded server it owns: the zero-setup default.

    The server is a supervised child process: if it dies, or lives but fails a small
    write-and-read check for `unanswered_s`, it is (killed and) started again on the same
    port with a growing backoff, while storage calls answer StorageError (503, code 3).
    What it acknowledged is in its journal and comes back with it.
    """

    def __init__(
        self,
        data_dir: str,
        database: str = "inspilot",
        timeout_ms: int = 5000,
        *,
        cache_mb: int = 256,
        restart_backoff_s: tuple[float, float] = (0.5, 30.0),
        unanswered_s: float = 10.0,
        watch_interval_s: float = 0.5,
    ) -> None:
        self._server = EmbeddedMongoProcess(data_dir, cache_mb=cache_mb)
        self._data_dir = data_dir
        self._backoff = restart_backoff_s
        self._unanswered_s = unanswered_s
        self._watch_interval_s = watch_interval_s
        # A check never waits longer than the time it may fail for.
        self._check_timeout_s = min(2.0, unanswered_s)
        self._supervisor: asyncio.Task[None] | None = None
        self._attached = False
        self.restarts = 0
        super().__init__("mongodb://embedded.invalid", database, timeout_ms)

    @property
    def server(self) -> EmbeddedMongoProcess:
        return self._server

    async def start(self) -> None:
        shared = parents_server_uri(self._data_dir)
        if shared is not None:
            # A worker of `inspilot serve`: the main process owns and watches the server.
            self._uri, self._attached = shared, True
            logger.info("embedded MongoDB of the main process at %s", shared)
            await super().start()
            return
        owner = running_server_uri(self._data_dir)
        if owner is not None:
            raise StorageError(
                f"storage: the embedded database in {self._data_dir} is served by another "
                f"running InsPilot ({owner}); stop it or choose another INSPILOT_DATA_DIR"
            )
        self._uri = await asyncio.to_thread(self._server.start)
        logger.info("embedded MongoDB (SecantusDB, pid %s) at %s", self._server.pid, self._uri)
        try:
            await super().start()
        except BaseException:
            await asyncio.to_thread(self._server.stop)
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="embedded-mongo-watch")

    async def _supervise(self) -> None:
        """Restart the server when it dies, and when it lives but stops answering.

        A WiredTiger panic (a full disk) leaves the process alive and every write failing;
        a stopped or wedged process answers nothing. Both heal only by a restart: after
        `unanswered_s` of failed write-and-read checks the child is killed (its journal
        keeps what it acknowledged) and started again.
        """
        failing_since: float | None = None
        while True:
            await asyncio.sleep(self._watch_interval_s)
            code = self._server.exited()
            if code is not None:
                logger.error("embedded MongoDB server exited (code %s): restarting", code)
            else:
                problem = await self._check()
                if problem is None:
                    failing_since = None
                    continue
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since < self._unanswered_s:
                    continue
                logger.error(
                    "embedded MongoDB server (pid %s) has failed its health check for %.0fs "
                    "(%s): killing and restarting it",
                    self._server.pid,
                    now - failing_since,
                    problem,
                )
                await asyncio.to_thread(self._server.kill)
            failing_since = None
            await self._restart()

    async def _check(self) -> str | None:
        """None when a tiny write reads back in time, else what went wrong (for the log)."""
        try:
            async with asyncio.timeout(self._check_timeout_s):
                await self.round_trip()
        except TimeoutError:
            return f"no answer within {self._check_timeout_s:.0f}s"
        except StorageError as exc:
            return exc.message
        return None

    async def _restart(self) -> None:
        delay = self._backoff[0]
        while True:
            try:
                await asyncio.to_thread(self._server.start)
            except StorageError as exc:
                logger.error("%s; next try in %.1fs", exc.message, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            self.restarts += 1
            logger.warning("embedded MongoDB server is back (pid %s)", self._server.pid)
            return

    async def close(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        try:
            await super().close()
        finally:
            if not self._attached:
                await asyncio.to_thread(self._server.stop)


class EmbeddedServerKeeper:
    """The embedded server of `inspilot serve`'s main process, shared by all its workers.

    Started once, before the workers; a thread restarts it (same port, growing backoff)
    if it dies, so a worker that dies or is replaced never takes the database with it.
    """

    def __init__(
        self, data_dir: str, *, cache_mb: int, backoff_s: tuple[float, float] = (0.5, 30.0)
    ) -> None:
        self.server = EmbeddedMongoProcess(data_dir, cache_mb=cache_mb)
        self._data_dir = data_dir
        self._backoff = backoff_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        owner = running_server_uri(self._data_dir)
        if owner is not None:
            raise StorageError(
                f"storage: the embedded database in {self._data_dir} is served by another "
                f"running InsPilot ({owner}); stop it or choose another INSPILOT_DATA_DIR"
            )
        uri = self.server.start()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="embedded-keeper")
        self._thread.start()
        return uri

    def _watch(self) -> None:
        delay = self._backoff[0]
        while not self._stop.wait(0.5):
            code = self.server.exited()
            if code is None:
                continue
            logger.error("embedded MongoDB server exited (code %s): restarting", code)
            try:
                self.server.start()
            except StorageError as exc:
                logger.error("%s; next try in %.1fs", exc.message, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]
            logger.warning("embedded MongoDB server is back (pid %s)", self.server.pid)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.server.stop()
