"""The shared SD ledger: several replicas (generators) on one MongoDB never double-book an
instance, serve jobs in arrival order across replicas, share health and take back the
slots of a replica that died. Against the embedded MongoDB-wire server and fake sdapi."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from adapters.sd_webui import SdWebUIImageGenerator, SharedLedger
from adapters.sd_webui.ledger import MongoSlotLedger
from application.ports import ImageRequest
from domain.errors import ModelUnavailable
from tests.fakes.sdapi_server import FakeSdCluster, FakeSdServer, tiny_png

# Slow: replicas sharing the SD ledger on the embedded MongoDB-wire server.
pytestmark = pytest.mark.slow

Replica = Callable[..., contextlib.AbstractAsyncContextManager[SdWebUIImageGenerator]]


@pytest.fixture
def servers() -> Iterator[Callable[..., list[FakeSdServer]]]:
    clusters: list[FakeSdCluster] = []

    def make(count: int, latency_s: float = 0.05) -> list[FakeSdServer]:
        clusters.append(FakeSdCluster(count, latency_s))
        return clusters[-1].servers

    yield make
    for cluster in clusters:
        cluster.close()


def replicas_on(uri: str, database: str) -> Replica:
    @contextlib.asynccontextmanager
    async def replica(
        urls: list[str], *, lease_s: float = 15.0, **options: Any
    ) -> AsyncIterator[SdWebUIImageGenerator]:
        settings: dict[str, Any] = {"cooldown_base_s": 0.2, "probe_timeout_s": 1.0}
        settings.update(options)
        ledger = SharedLedger(lambda: uri, database, lease_s=lease_s)
        generator = SdWebUIImageGenerator(urls, ledger=ledger, **settings)
        await generator.start()
        try:
            yield generator
        finally:
            await generator.close()

    return replica


@pytest.fixture
def replica(mongodb_uri: str, mongo_database: str) -> Replica:
    return replicas_on(mongodb_uri, mongo_database)


def ledger_of(generator: SdWebUIImageGenerator) -> MongoSlotLedger:
    pool = generator._pool
    assert isinstance(pool, MongoSlotLedger)
    return pool


async def eventually(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_two_replicas_never_book_one_instance_twice(
    replica: Replica, servers: Callable[..., list[FakeSdServer]]
) -> None:
    fakes = servers(3, latency_s=0.15)
    urls = [fake.url for fake in fakes]
    async with replica(urls) as a, replica(urls) as b:
        jobs = [
            (a if n % 2 else b).generate(ImageRequest(prompt=f"p{n}", seed=n)) for n in range(12)
        ]
        images = await asyncio.gather(*jobs)
        assert ledger_of(a).replica != ledger_of(b).replica
    assert [image.data for image in images] == [tiny_png(n) for n in range(12)]
    assert [fake.counters.max_in_flight for fake in fakes] == [1, 1, 1]
    assert sum(fake.counters.renders for fake in fakes) == 12


async def test_two_in_process_pools_do_double_book(
    servers: Callable[..., list[FakeSdServer]],
) -> None:
    """Why the ledger exists: two processes with their own pools send one instance two renders."""
    fakes = servers(2, latency_s=0.15)
    urls = [fake.url for fake in fakes]
    a, b = SdWebUIImageGenerator(urls), SdWebUIImageGenerator(urls)
    await a.start()
    await b.start()
    try:
        jobs = [(a, b)[n % 2].generate(ImageRequest(prompt=f"p{n}", seed=n)) for n in range(8)]
        await asyncio.gather(*jobs)
    finally:
        await a.close()
        await b.close()
    assert max(fake.counters.max_in_flight for fake in fakes) >= 2


async def _arrival_order(replica: Replica, fake: FakeSdServer) -> bool:
    """True when the replicas learnt of freed slots from a change stream."""
    async with replica([fake.url]) as a, replica([fake.url]) as b:
        # The first job holds the only slot; the others queue, alternating replicas.
        fake.knobs.hang = True
        first = asyncio.create_task(a.generate(ImageRequest(prompt="q0", seed=0)))
        await eventually(lambda: fake.counters.requests == 1)
        waiting = []
        for n in range(1, 7):
            waiting.append(
                asyncio.create_task((b, a)[n % 2].generate(ImageRequest(prompt=f"q{n}", seed=n)))
            )
            target = n

            def queued(target: int = target) -> bool:
                return ledger_of(a).queue_length() + ledger_of(b).queue_length() == target

            await eventually(queued)
        fake.knobs.hang = False
        await asyncio.gather(first, *waiting)
        streamed = ledger_of(a).change_stream
    assert fake.counters.prompts == [f"q{n}" for n in range(7)]
    return streamed


async def test_jobs_get_the_slot_in_arrival_order_across_replicas(
    replica: Replica, servers: Callable[..., list[FakeSdServer]]
) -> None:
    assert not await _arrival_order(replica, servers(1, latency_s=0.1)[0])


async def test_a_replica_set_wakes_waiters_by_change_stream(
    replica_set_uri: str, servers: Callable[..., list[FakeSdServer]]
) -> None:
    replica = replicas_on(replica_set_uri, "inspilot_ledger_rs")
    try:
        assert await _arrival_order(replica, servers(1, latency_s=0.1)[0])
    finally:
        with MongoClient(replica_set_uri) as client:
            client.drop_database("inspilot_ledger_rs")


async def test_one_replica_finding_an_instance_down_spares_the_other(
    replica: Replica, servers: Callable[..., list[FakeSdServer]]
) -> None:
    fakes = servers(2, latency_s=0.05)
    urls = [fake.url for fake in fakes]
    async with replica(urls, lease_s=0.6) as a, replica(urls, lease_s=0.6) as b:
        fakes[0].down()
        await asyncio.gather(*(a.generate(ImageRequest(prompt=f"a{n}")) for n in range(2)))
        for n in range(4):
            image = await b.generate(ImageRequest(prompt=f"b{n}"))
            assert image.instance == fakes[1].url
        stats = {item.instance: item for item in b.stats().instances}
        assert stats[fakes[0].url].failures == 0  # B never tried the dead instance
        await eventually(lambda: not stats_of(b, fakes[0].url).healthy)
        fakes[0].up()
        # Either replica's probe brings it back for both.
        await eventually(lambda: stats_of(b, fakes[0].url).healthy, within_s=8)
        await eventually(lambda: stats_of(a, fakes[0].url).healthy, within_s=8)


def stats_of(generator: SdWebUIImageGenerator, url: str) -> Any:
    return next(item for item in generator.stats().instances if item.instance == url)


async def test_a_dead_replicas_lease_is_interrupted_and_taken_back(
    replica: Replica, servers: Callable[..., list[FakeSdServer]]
) -> None:
    fake = servers(1, latency_s=0.05)[0]
    fake.knobs.hang = True
    lease_s = 0.6
    async with replica([fake.url], lease_s=lease_s) as survivor:
        holder = replica([fake.url], lease_s=lease_s)
        dead = await holder.__aenter__()
        doomed = asyncio.create_task(dead.generate(ImageRequest(prompt="doomed")))
        await eventually(lambda: fake.counters.requests == 1)
        _stop_beating(ledger_of(dead))
        started = time.monotonic()
        job = asyncio.create_task(survivor.generate(ImageRequest(prompt="after", seed=7)))
        await eventually(lambda: fake.counters.interrupts >= 1, within_s=lease_s + 2.0)
        fake.knobs.hang = False
        image = await job
        waited = time.monotonic() - started
        await doomed
        await holder.__aexit__(None, None, None)
        assert ledger_of(survivor).reclaimed == 1
    assert image.data == tiny_png(7)
    assert waited < lease_s + 2.0
    assert fake.counters.max_in_flight == 1
    assert fake.counters.prompts == ["doomed", "after"]


def _stop_beating(ledger: MongoSlotLedger) -> None:
    """As after kill -9: no heartbeat, no lease renewal, no slot given back."""
    for task in ledger._loops:
        task.cancel()
    ledger.release = lambda instance, held_s: None  # type: ignore[method-assign]


async def test_a_job_that_gives_up_leaves_no_ticket_behind(
    replica: Replica,
    servers: Callable[..., list[FakeSdServer]],
    mongodb_uri: str,
    mongo_database: str,
) -> None:
    fake = servers(1, latency_s=0.4)[0]
    async with replica([fake.url], max_queue_wait_s=0.1) as a, replica([fake.url]) as b:
        busy = asyncio.create_task(a.generate(ImageRequest(prompt="long")))
        await eventually(lambda: fake.counters.requests == 1)
        with pytest.raises(ModelUnavailable, match="no image slot freed"):
            await a.generate(ImageRequest(prompt="impatient"))
        image = await b.generate(ImageRequest(prompt="next", seed=3))
        await busy
    assert image.data == tiny_png(3)
    assert fake.counters.prompts == ["long", "next"]
    with MongoClient(mongodb_uri) as client:
        db = client[mongo_database]
        assert db["sd_queue"].find_one({"_id": "queue"})["tickets"] == []
        assert db["sd_instances"].find_one({"_id": fake.url})["free"] == 1


async def test_the_configuration_puts_the_slots_in_the_stores_database(
    mongodb_uri: str, mongo_database: str, servers: Callable[..., list[FakeSdServer]]
) -> None:
    from entrypoints.container import build_container
    from entrypoints.lifecycle import running
    from entrypoints.settings import Settings

    fake = servers(1)[0]
    settings = Settings.load(
        {
            "INSPILOT_IMAGES_BACKEND": "sd",
            "INSPILOT_SD_INSTANCES": fake.url,
            "INSPILOT_SD_LEDGER": "mongodb",
            "INSPILOT_SD_LEASE_S": "9",
            "INSPILOT_STORAGE_BACKEND": "mongodb",
            "INSPILOT_MONGODB_URI": mongodb_uri,
            "INSPILOT_MONGODB_DATABASE": mongo_database,
        }
    )
    container = build_container(settings)
    async with running(container):
        generator = container.image_generator()
        assert isinstance(generator._pool, MongoSlotLedger)
        await generator.generate(ImageRequest(prompt="first", seed=4))
        image = await generator.generate(ImageRequest(prompt="configured", seed=5))
    with MongoClient(mongodb_uri) as client:
        doc = client[mongo_database]["sd_instances"].find_one({"_id": fake.url})
    assert image.data == tiny_png(5)
    # The renders went through the ledger: the time of the first shared with the second's
    # give-back (render times ride on that write), and the slots given back.
    assert doc is not None and doc["healthy"] and doc["render_s"] > 0
    assert (doc["free"], doc["leases"]) == (1, [])


async def test_a_job_waits_for_a_clearly_faster_instance_busy_on_another_replica(
    replica: Replica, servers: Callable[..., list[FakeSdServer]]
) -> None:
    """The pool's scheduling rule across replicas: render times are shared through the
    ledger, so no replica starts a job on a slow instance a busy fast one finishes sooner."""
    # Long enough that a loaded machine's slow ledger reads do not make the fast render
    # look overdue (twice its estimate), when the rule stops counting on it.
    fast, slow = servers(2, latency_s=0.4)
    slow.knobs.latency_s = 2.0
    urls = [fast.url, slow.url]
    async with replica(urls) as a, replica(urls) as b:
        await asyncio.gather(*(a.generate(ImageRequest(prompt="warm-up")) for _ in range(2)))
        assert (fast.counters.renders, slow.counters.renders) == (1, 1)
        await _learn_render_times(ledger_of(b))
        # A fast render delayed past twice its estimate by a busy machine stops counting
        # as "sooner" (by design), so the scenario gets a second chance; a ledger without
        # the rule starts a job on the free slow instance every time.
        for attempt in range(2):
            slow_before = slow.counters.renders
            served = fast.counters.requests
            first = asyncio.create_task(a.generate(ImageRequest(prompt=f"a{attempt}")))
            await eventually(lambda served=served: fast.counters.requests == served + 1)
            # fast, fast, fast ends by ~1.2 s; any job on the slow one would end at ~2 s.
            images = await asyncio.gather(
                first,
                *((b, a)[n % 2].generate(ImageRequest(prompt=f"x{attempt}{n}")) for n in range(2)),
            )
            if [image.instance for image in images] == [fast.url] * 3:
                break
    assert [image.instance for image in images] == [fast.url] * 3
    assert slow.counters.renders == slow_before
    assert fast.counters.max_in_flight == 1


async def _learn_render_times(ledger: MongoSlotLedger) -> None:
    """Read the documents until both render times are in (given back in the background)."""
    deadline = time.monotonic() + 5.0
    while any(instance.render_s is None for instance in ledger.instances):
        assert time.monotonic() < deadline, "render times never shared"
        await asyncio.sleep(0.02)
        await ledger.refresh()


async def test_an_unreachable_ledger_names_the_part_not_its_address(
    servers: Callable[..., list[FakeSdServer]], caplog: pytest.LogCaptureFixture
) -> None:
    """The driver's words (the address, the topology) go to the log, not to the client."""
    (server,) = servers(1)
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        ledger = SharedLedger(lambda: uri, "inspilot", timeout_ms=300)
        generator = SdWebUIImageGenerator([server.url], ledger=ledger)
        with pytest.raises(ModelUnavailable, match="ledger") as refused:
            await generator.start()
        await generator.close()
    assert str(port) not in str(refused.value) and "127.0.0.1" not in str(refused.value)
    assert str(port) in caplog.text
