"""MongoDB for integration tests: a given URI, else a Docker container, else embedded SecantusDB."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
from pymongo import MongoClient

from adapters.embedded_mongo import EmbeddedMongoProcess
from adapters.mongo import MongoExperimentRepository
from adapters.mongo.repository import redact


@dataclass
class MongoForTests:
    uri: str
    description: str
    stop: Callable[[], None]


_mongo: MongoForTests | None = None
_reported = False


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        # No SDK, no socket, no daemon: all mean "no Docker here".
        return False


def _start_mongo() -> MongoForTests:
    uri = os.environ.get("INSPILOT_TEST_MONGODB_URI")
    if uri:
        return MongoForTests(uri, f"INSPILOT_TEST_MONGODB_URI {redact(uri)}", lambda: None)
    if _docker_answers():
        from testcontainers.mongodb import MongoDbContainer

        container = MongoDbContainer("mongo:7").start()
        uri = container.get_connection_url()
        return MongoForTests(uri, f"testcontainers mongo:7 at {redact(uri)}", container.stop)
    data_dir = tempfile.mkdtemp(prefix="inspilot-mongo-")
    server = EmbeddedMongoProcess(data_dir)
    uri = server.start()

    def stop() -> None:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    version = importlib.metadata.version("secantusdb")
    return MongoForTests(
        uri, f"embedded SecantusDB {version} (child process {server.pid}) at {uri}", stop
    )


def _test_mongo(config: pytest.Config) -> MongoForTests:
    """One server per test run, started on first need and stopped when pytest ends."""
    global _mongo
    if _mongo is None:
        _mongo = _start_mongo()
        config.add_cleanup(_stop_mongo)
    return _mongo


def _stop_mongo() -> None:
    global _mongo
    if _mongo is not None:
        _mongo.stop()
        _mongo = None


def pytest_report_header(config: pytest.Config) -> str:
    # Called only when this directory is on the command line (pytest reads headers from
    # the initial conftests); otherwise the line comes after collection, below.
    global _reported
    _reported = True
    return f"mongodb for tests: {_test_mongo(config).description}"


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> str | None:
    global _reported
    if _reported or not any("mongodb_uri" in getattr(i, "fixturenames", ()) for i in items):
        return None
    _reported = True
    return f"mongodb for tests: {_test_mongo(config).description}"


@pytest.fixture(scope="session")
def mongodb_uri(pytestconfig: pytest.Config) -> str:
    return _test_mongo(pytestconfig).uri


@pytest.fixture
def mongo_database(mongodb_uri: str) -> Iterator[str]:
    """A database of its own per test, dropped afterwards (matters on a shared server)."""
    name = f"inspilot_test_{uuid.uuid4().hex[:12]}"
    yield name
    with MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(name)


@pytest.fixture
async def mongo_repository(
    mongodb_uri: str, mongo_database: str
) -> AsyncIterator[MongoExperimentRepository]:
    """Created per test: an async client belongs to the event loop it was started on."""
    repository = MongoExperimentRepository(mongodb_uri, mongo_database)
    await repository.start()
    try:
        yield repository
    finally:
        await repository.close()


@pytest.fixture(scope="session")
def replica_set_uri() -> Iterator[str]:
    """A one-node replica set of the embedded server: it has change streams (and an oplog)."""
    data_dir = tempfile.mkdtemp(prefix="inspilot-rs-")
    server = EmbeddedMongoProcess(data_dir, replica_set="rs0")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
