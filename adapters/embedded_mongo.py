"""An in-process MongoDB-wire server (SecantusDB) for tests, demos and single-machine studies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from adapters.mongo import MongoExperimentRepository
from domain.errors import StorageError

logger = logging.getLogger("inspilot.storage")


class EmbeddedMongoServer:
    """SecantusDB on a loopback port with its WiredTiger files under `data_dir`.

    SecantusDB is beta and GPL-2.0, so it is an optional extra imported only in start():
    this module imports without it. The server runs in background threads of this process.
    """

    def __init__(self, data_dir: str, *, port: int = 0) -> None:
        self._data_dir = Path(data_dir)
        self._port = port
        self._server: Any = None
        self.version: str | None = None

    @property
    def uri(self) -> str:
        if self._server is None:
            raise StorageError("storage: the embedded MongoDB server is not started")
        # directConnection: the server announces a one-member replica set ("secantus")
        # whose member name the driver must not go looking for.
        return f"mongodb://127.0.0.1:{self._server.port}/?directConnection=true"

    def start(self) -> str:
        """Starts the server and returns its URI."""
        if self._server is not None:
            return self.uri
        try:
            import secantus
        except ImportError as exc:
            raise StorageError(
                "storage: the embedded MongoDB server needs SecantusDB: "
                "pip install -e '.[embedded]'"
            ) from exc
        try:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            server = secantus.SecantusDBServer(
                host="127.0.0.1", port=self._port, storage_path=str(self._data_dir)
            )
        except Exception as exc:
            # WiredTiger locks its home directory; a second process gets EBUSY.
            if "busy" in str(exc).lower() or "lock" in str(exc).lower():
                raise StorageError(
                    f"storage: the embedded MongoDB data directory {self._data_dir} is in use "
                    "by another running server; stop it or choose another directory"
                ) from exc
            raise StorageError(
                f"storage: cannot open the embedded MongoDB data in {self._data_dir}: {exc}"
            ) from exc
        try:
            server.start()
        except OSError as exc:
            server.stop()
            raise StorageError(
                f"storage: the embedded MongoDB server cannot listen on port {self._port}: {exc}"
            ) from exc
        self._server = server
        self.version = secantus.__version__
        return self.uri

    def stop(self) -> None:
        """Stops the server and releases the data directory; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        # SecantusDB closes its listening socket without shutdown(), which on Linux leaves
        # its accept thread blocked until a 2 s join timeout; shutdown() wakes it at once.
        listener = getattr(server, "_socket", None)
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
        server.stop()

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

    Sessions survive restarts because they go through exactly the code a real MongoDB
    deployment runs; only the server differs.
    """

    def __init__(self, data_dir: str, database: str = "inspilot", timeout_ms: int = 5000) -> None:
        self._server = EmbeddedMongoServer(data_dir)
        super().__init__("mongodb://embedded.invalid", database, timeout_ms)

    @property
    def server(self) -> EmbeddedMongoServer:
        return self._server

    async def start(self) -> None:
        self._uri = await asyncio.to_thread(self._server.start)
        logger.info("embedded MongoDB (SecantusDB %s) at %s", self._server.version, self._uri)
        try:
            await super().start()
        except BaseException:
            await asyncio.to_thread(self._server.stop)
            raise

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await asyncio.to_thread(self._server.stop)
