"""Three `inspilot serve` replicas on one MongoDB-wire server (a one-node replica set: change
streams) and six fake SD instances: a burst of rapid divergences never books an instance
twice, and a replica killed mid-burst loses only its own requests: its slots come back
within the lease, its jobs end failed and recorded, nothing is left held."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.fakes.sdapi_server import FakeSdServer, fake_sd_instances
from tests.integration.test_cli_serve import TOKEN, serving
from tests.integration.test_serve_workers import _workers

# Slow: three `inspilot serve` subprocesses on a replica set of the embedded MongoDB-wire server.
pytestmark = pytest.mark.slow

pytest.importorskip("secantus")
LEASE_S = 3.0
PNG = b"\x89PNG\r\n\x1a\n"


@contextlib.contextmanager
def three_replicas(
    tmp_path: Path, uri: str, database: str, sd: list[FakeSdServer]
) -> Iterator[list[tuple[str, Any]]]:
    env = {
        "INSPILOT_STORAGE_BACKEND": "mongodb",
        "INSPILOT_MONGODB_URI": uri,
        "INSPILOT_MONGODB_DATABASE": database,
        "INSPILOT_IMAGES_BACKEND": "sd",
        "INSPILOT_SD_INSTANCES": ",".join(server.url for server in sd),
        "INSPILOT_SD_LEDGER": "mongodb",
        "INSPILOT_JOBS_BACKEND": "mongodb",
        "INSPILOT_SD_LEASE_S": str(LEASE_S),
    }
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(serving(tmp_path / str(n), **env)) for n in range(3)]


def _diverge(url: str, n: int) -> list[bytes]:
    body = {"appid": 0, "type": 0, "prompts": {"task": f"厨房{n}", "num": 2}, "username": f"p{n}"}
    reply = httpx.post(f"{url}/generate", json=body, timeout=120).json()
    assert reply["success"], reply
    return [
        base64.b64decode(item["image"])
        for creative in reply["data"]["result"]
        for item in creative["items"]
        if item.get("image")
    ]


@pytest.fixture
def database(replica_set_uri: str) -> Iterator[str]:
    name = f"inspilot_replicas_{uuid.uuid4().hex[:8]}"
    yield name
    with MongoClient(replica_set_uri) as client:
        client.drop_database(name)


def test_a_burst_over_three_replicas_books_each_instance_once(
    tmp_path: Path, replica_set_uri: str, database: str
) -> None:
    with (
        fake_sd_instances(6, latency_s=0.3) as sd,
        three_replicas(tmp_path, replica_set_uri, database, sd) as replicas,
        ThreadPoolExecutor(12) as pool,
    ):
        urls = [url for url, _ in replicas]
        pictures = list(pool.map(lambda n: _diverge(urls[n % 3], n), range(12)))
    assert all(len(images) == 2 for images in pictures)
    assert all(image.startswith(PNG) for images in pictures for image in images)
    assert [server.counters.max_in_flight for server in sd] == [1] * 6
    assert sum(server.counters.renders for server in sd) == 24


def test_a_replica_killed_mid_burst_loses_only_its_own_requests(
    tmp_path: Path, replica_set_uri: str, database: str
) -> None:
    with (
        fake_sd_instances(6, latency_s=1.0) as sd,
        three_replicas(tmp_path, replica_set_uri, database, sd) as replicas,
        ThreadPoolExecutor(12) as pool,
    ):
        (victim, process), *survivors = replicas
        workers = _workers(process.pid)
        burst = [pool.submit(_diverge, replicas[n % 3][0], n) for n in range(12)]
        time.sleep(0.5)
        job_body = {"pipeline": "rapid_divergence", "inputs": {"task": "厨房", "num": 2}}
        job = httpx.post(f"{victim}/api/v1/jobs", json={**job_body, "username": "v"}).json()
        time.sleep(1.0)
        os.killpg(process.pid, signal.SIGKILL)
        killed = time.monotonic()
        with MongoClient(replica_set_uri) as client:
            ledger = client[database]["sd_instances"]
            while _held_by(ledger, workers):
                assert time.monotonic() - killed < LEASE_S + 2, "the dead replica's slots"
                time.sleep(0.1)
            for n, future in enumerate(burst):
                if n % 3:  # the survivors' requests all succeed
                    assert all(image.startswith(PNG) for image in future.result())
            other = survivors[0][0]
            seen = _job(other, job["data"]["id"])
            deadline = time.monotonic() + LEASE_S + 3
            while seen["status"] != "failed":
                assert time.monotonic() < deadline, seen
                time.sleep(0.2)
                seen = _job(other, job["data"]["id"])
            assert seen["error"]["message"] == "the replica running it stopped"
            record = _record(other, job["data"]["generationId"])
            assert record["outcome"] == "failed"
            # No instance is left held once the work is over. A slot handed to a survivor's
            # waiting ticket as that ticket's request ended is given back by that survivor
            # (a round trip or two), so the last hand-overs may still be in flight here.
            settled = time.monotonic() + LEASE_S
            docs = list(ledger.find())
            while any(doc["leases"] for doc in docs) and time.monotonic() < settled:
                time.sleep(0.1)
                docs = list(ledger.find())
        assert [(doc["free"], doc["leases"]) for doc in docs] == [(1, [])] * 6
        assert [server.counters.max_in_flight for server in sd] == [1] * 6


def _held_by(ledger: Any, workers: list[int]) -> bool:
    holders = {lease["holder"] for doc in ledger.find() for lease in doc["leases"]}
    return any(f":{pid}:" in holder for pid in workers for holder in holders)


def _job(url: str, job_id: str) -> Any:
    return httpx.get(f"{url}/api/v1/jobs/{job_id}", timeout=10).json()["data"]


def _record(url: str, generation_id: str) -> Any:
    deadline = time.monotonic() + 10
    while True:
        reply = httpx.get(
            f"{url}/api/v1/generations/{generation_id}",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        if reply.status_code == 200:
            return reply.json()["data"]
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.2)
