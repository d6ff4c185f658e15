"""SdWebUIImageGenerator against fake AUTOMATIC1111 servers on loopback: pool, failover, errors."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from adapters.sd_webui import SdWebUIImageGenerator
from adapters.sd_webui.instance import Endpoint, Instance
from adapters.sd_webui.pool import SlotPool
from application.ports import GeneratedImage, ImageRequest
from domain.errors import (
    ModelAnswerInvalid,
    ModelError,
    ModelTimeout,
    ModelUnavailable,
)
from tests.fakes.sdapi_server import FakeSdCluster, FakeSdServer, tiny_png

PNG = b"\x89PNG\r\n\x1a\n"
MakeServers = Callable[..., list[FakeSdServer]]


@pytest.fixture
def make_servers() -> Iterator[MakeServers]:
    clusters: list[FakeSdCluster] = []

    def make(count: int, latency_s: float = 0.05) -> list[FakeSdServer]:
        cluster = FakeSdCluster(count, latency_s)
        clusters.append(cluster)
        return cluster.servers

    yield make
    for cluster in clusters:
        cluster.close()


@contextlib.asynccontextmanager
async def running(urls: list[str], **options: Any) -> AsyncIterator[SdWebUIImageGenerator]:
    # Short cooldowns and probes keep recovery tests fast; the defaults are for production.
    settings: dict[str, Any] = {"cooldown_base_s": 0.2, "probe_timeout_s": 1.0, "timeout_s": 10.0}
    settings.update(options)
    generator = SdWebUIImageGenerator(urls, **settings)
    await generator.start()
    try:
        yield generator
    finally:
        await generator.close()


async def eventually(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def by_url(generator: SdWebUIImageGenerator, url: str) -> Any:
    return next(item for item in generator.stats().instances if item.instance == url)


def assert_real_image(image: GeneratedImage) -> None:
    assert image.data.startswith(PNG)
    assert image.data == tiny_png(image.seed)


async def test_two_jobs_take_the_two_idle_instances_at_once(make_servers: MakeServers) -> None:
    servers = make_servers(2, latency_s=0.3)
    async with running([s.url for s in servers]) as generator:
        images = await asyncio.gather(
            generator.generate(ImageRequest(prompt="a")),
            generator.generate(ImageRequest(prompt="b")),
        )
    assert {image.instance for image in images} == {s.url for s in servers}
    assert [s.counters.requests for s in servers] == [1, 1]
    # Both requests arrived before either render (0.3 s) could have ended.
    first, second = (s.counters.received_at[0] for s in servers)
    assert abs(first - second) < 0.25
    for image in images:
        assert_real_image(image)
        assert image.model == "sd_xl_base_1.0"


@pytest.mark.slow  # a queue of renders
async def test_waiting_jobs_start_in_the_order_they_came(make_servers: MakeServers) -> None:
    (server,) = make_servers(1, latency_s=0.1)
    async with running([server.url]) as generator:
        tasks = [
            asyncio.create_task(generator.generate(ImageRequest(prompt=f"job {n}")))
            for n in range(6)
        ]
        await eventually(lambda: generator.queue_length() == 5)
        await asyncio.gather(*tasks)
        stats = generator.stats()
    assert server.counters.prompts == [f"job {n}" for n in range(6)]
    assert server.counters.max_concurrent == 1
    assert stats.queue_length == 0
    assert stats.instances[0].queue_wait_max_s > 0


async def test_a_dead_instance_costs_one_retry_and_no_blank_image(
    make_servers: MakeServers,
) -> None:
    servers = make_servers(3, latency_s=0.05)
    async with running([s.url for s in servers]) as generator:
        servers[0].down()
        images = await asyncio.gather(
            *(generator.generate(ImageRequest(prompt=f"p{n}")) for n in range(12))
        )
        dead = by_url(generator, servers[0].url)
    assert len(images) == 12
    for image in images:
        assert_real_image(image)
        assert image.instance != servers[0].url
    # The one job sent to the dead instance found out; after that it got none.
    assert dead.jobs == dead.failures == 1
    assert not dead.healthy
    assert servers[1].counters.requests + servers[2].counters.requests == 12


async def test_a_500_is_retried_elsewhere_with_the_same_seed(make_servers: MakeServers) -> None:
    failing, healthy = make_servers(2, latency_s=0.05)
    failing.knobs.status_code = 500
    async with running([failing.url, healthy.url]) as generator:
        images = await asyncio.gather(
            generator.generate(ImageRequest(prompt="x")),
            generator.generate(ImageRequest(prompt="y")),
        )
    assert failing.counters.requests == 1
    (seed,) = failing.counters.seeds
    assert seed >= 0, "the adapter picks the seed before the first attempt"
    assert seed in healthy.counters.seeds
    assert seed in [image.seed for image in images]
    for image in images:
        assert_real_image(image)
        assert image.instance == healthy.url


@pytest.mark.slow  # a cooldown wait and a probe
async def test_a_cooled_down_instance_returns_after_a_probe(make_servers: MakeServers) -> None:
    flaky, steady = make_servers(2, latency_s=0.05)
    async with running([flaky.url, steady.url], cooldown_base_s=0.2) as generator:
        flaky.down()
        await asyncio.gather(*(generator.generate(ImageRequest(prompt="p")) for _ in range(4)))
        assert not by_url(generator, flaky.url).healthy
        flaky.up()
        await eventually(lambda: by_url(generator, flaky.url).healthy)
        images = await asyncio.gather(
            *(generator.generate(ImageRequest(prompt="q")) for _ in range(4))
        )
    assert flaky.counters.requests >= 1
    assert flaky.url in {image.instance for image in images}


async def test_a_4xx_is_not_retried_elsewhere(make_servers: MakeServers) -> None:
    servers = make_servers(2)
    for server in servers:
        server.knobs.status_code = 422
    async with running([s.url for s in servers]) as generator:
        with pytest.raises(ModelError, match="422") as caught:
            await generator.generate(ImageRequest(prompt="p"))
        assert all(item.healthy for item in generator.stats().instances)
    assert not isinstance(caught.value, ModelUnavailable | ModelTimeout)
    assert "fake failure 422" in caught.value.message
    assert sum(s.counters.requests for s in servers) == 1


@pytest.mark.slow  # waits out a render timeout
async def test_a_hanging_instance_times_out_and_the_job_moves(make_servers: MakeServers) -> None:
    hung, healthy = make_servers(2, latency_s=0.05)
    hung.knobs.hang = True
    async with running([hung.url, healthy.url], timeout_s=0.5) as generator:
        images = await asyncio.gather(
            generator.generate(ImageRequest(prompt="a")),
            generator.generate(ImageRequest(prompt="b")),
        )
        suspect = by_url(generator, hung.url)
    hung.knobs.hang = False
    assert hung.counters.requests == 1
    assert [image.instance for image in images] == [healthy.url, healthy.url]
    assert not suspect.healthy or suspect.consecutive_failures == 1
    assert "no image within" in (suspect.last_error or "")


async def test_a_single_hanging_instance_gives_a_typed_timeout(make_servers: MakeServers) -> None:
    (hung,) = make_servers(1)
    hung.knobs.hang = True
    async with running([hung.url], timeout_s=0.3) as generator:
        with pytest.raises(ModelTimeout):
            await generator.generate(ImageRequest(prompt="a"))
    hung.knobs.hang = False


async def test_all_instances_down_fails_fast(make_servers: MakeServers) -> None:
    servers = make_servers(2)
    for server in servers:
        server.down()
    async with running([s.url for s in servers], max_queue_wait_s=30) as generator:
        # Refused as an outage, not after the 30 s wait for a slot ("no image slot freed").
        with pytest.raises(
            ModelUnavailable, match=r"^no Stable Diffusion instance is up$"
        ) as caught:
            await generator.generate(ImageRequest(prompt="p"))
        assert generator.stats().outage
    assert caught.value.retry_after_s is not None and caught.value.retry_after_s > 0


async def test_instances_dying_mid_run_fail_the_job_fast(make_servers: MakeServers) -> None:
    servers = make_servers(2)
    async with running([s.url for s in servers], max_queue_wait_s=30) as generator:
        for server in servers:
            server.down()
        # Each instance tried once and refused at once: no wait for a slot or a render.
        with pytest.raises(ModelUnavailable, match="every attempt failed") as caught:
            await generator.generate(ImageRequest(prompt="p"))
        message = str(caught.value)
        # Each instance is named by its place in the list, never by its internal address
        # or the HTTP library's words (those are in the log).
        assert "SD instance 1: " in message and "SD instance 2: " in message
        assert all(server.url.split("//")[1] not in message for server in servers)
        assert "127.0.0.1" not in message and "Error" not in message
        assert "no image slot freed" not in message and "no image within" not in message


@pytest.mark.slow  # a queue of 0.3 s renders
async def test_a_full_queue_refuses_with_retry_after(make_servers: MakeServers) -> None:
    (server,) = make_servers(1, latency_s=0.3)
    async with running([server.url], queue_max=2) as generator:
        admitted = [
            asyncio.create_task(generator.generate(ImageRequest(prompt=f"p{n}"))) for n in range(3)
        ]
        await eventually(lambda: generator.queue_length() == 2)
        with pytest.raises(ModelUnavailable, match="queue is full") as caught:
            await generator.generate(ImageRequest(prompt="one too many"))
        assert caught.value.retry_after_s is not None and caught.value.retry_after_s > 0
        assert len(await asyncio.gather(*admitted)) == 3


@pytest.mark.slow  # waits out the queue's patience
async def test_a_long_wait_gives_up_with_retry_after(make_servers: MakeServers) -> None:
    (server,) = make_servers(1, latency_s=0.6)
    async with running([server.url], max_queue_wait_s=0.2) as generator:
        first = asyncio.create_task(generator.generate(ImageRequest(prompt="first")))
        await eventually(lambda: server.counters.requests == 1)
        with pytest.raises(ModelUnavailable, match="no image slot freed") as caught:
            await generator.generate(ImageRequest(prompt="second"))
        assert caught.value.retry_after_s is not None and caught.value.retry_after_s > 0
        assert_real_image(await first)
        assert generator.stats().queue_length == 0


async def test_the_wrong_model_is_reported(make_servers: MakeServers) -> None:
    (server,) = make_servers(1)
    server.knobs.model_name = "v1-5-pruned-emaonly"
    async with running([server.url]) as generator:
        with pytest.raises(ModelAnswerInvalid, match="v1-5-pruned-emaonly") as caught:
            await generator.generate(ImageRequest(prompt="p", checkpoint="sd_xl_base_1.0"))
        assert "sd_xl_base_1.0" in caught.value.message
        # Loose match: extension and hash suffix do not make a different model.
        server.knobs.model_name = None
        named = ImageRequest(prompt="p", checkpoint="SD_XL_base_1.0.safetensors [31e35c80fc]")
        assert_real_image(await generator.generate(named))
    assert server.counters.requests == 2


async def test_an_empty_image_list_is_an_invalid_answer(make_servers: MakeServers) -> None:
    (server,) = make_servers(1)
    server.knobs.empty_images = True
    async with running([server.url]) as generator:
        with pytest.raises(ModelAnswerInvalid, match="without an image"):
            await generator.generate(ImageRequest(prompt="p"))
        assert generator.stats().instances[0].failures == 1


async def test_a_cancelled_render_is_interrupted_and_its_slot_kept_until_the_gpu_is_idle(
    make_servers: MakeServers,
) -> None:
    (server,) = make_servers(1, latency_s=5.0)
    async with running([server.url]) as generator:
        doomed = asyncio.create_task(generator.generate(ImageRequest(prompt="doomed")))
        await eventually(lambda: server.counters.requests == 1)
        queued_then_cancelled = asyncio.create_task(generator.generate(ImageRequest(prompt="c")))
        follower = asyncio.create_task(generator.generate(ImageRequest(prompt="next")))
        await eventually(lambda: generator.queue_length() == 2)
        queued_then_cancelled.cancel()
        await asyncio.gather(queued_then_cancelled, return_exceptions=True)
        assert generator.queue_length() == 1
        server.knobs.latency_s = 0.05
        doomed.cancel()
        await asyncio.gather(doomed, return_exceptions=True)
        # The instance is still rendering the doomed job: its slot is not free yet.
        stats = generator.stats()
        assert (stats.queue_length, stats.instances[0].busy) == (1, 1)
        # Interrupted, the 5 s render ends at once and the slot goes to the follower.
        assert_real_image(await asyncio.wait_for(follower, 3.0))
        await eventually(lambda: generator.stats().instances[0].busy == 0)
        stats = generator.stats()
    assert server.counters.interrupts == 1
    assert server.counters.max_concurrent == 1  # never a second render while busy
    assert stats.queue_length == 0 and stats.instances[0].cancelled == 1
    assert stats.instances[0].healthy
    assert server.counters.prompts == ["doomed", "next"]


async def test_a_timed_out_render_keeps_its_slot_until_the_instance_says_idle(
    make_servers: MakeServers,
) -> None:
    (server,) = make_servers(1)
    server.knobs.hang = True  # ignores nothing but an interrupt, like a stuck sampler
    async with running([server.url], timeout_s=0.3, max_queue_wait_s=0.3) as generator:
        with pytest.raises(ModelTimeout):
            await generator.generate(ImageRequest(prompt="slow"))
        await eventually(lambda: server.counters.interrupts == 1)
        await eventually(lambda: generator.stats().instances[0].busy == 0)
        assert server.counters.concurrent == 0


async def test_credentials_in_the_url_become_basic_auth(make_servers: MakeServers) -> None:
    locked, bare = make_servers(2)
    for server in (locked, bare):
        server.knobs.auth = ("artist", "s3cret")
    urls = [locked.url_with_auth("artist", "s3cret"), bare.url]
    async with running(urls) as generator:
        image = await generator.generate(ImageRequest(prompt="p"))
        stats = generator.stats()
    assert image.instance == locked.url
    assert [item.instance for item in stats.instances] == [locked.url, bare.url]
    assert [item.healthy for item in stats.instances] == [True, False]
    assert "s3cret" not in repr(stats)


@pytest.mark.slow  # a cooldown, a failed probe and a recovery
async def test_waiting_jobs_fail_once_every_instance_stays_down(
    make_servers: MakeServers,
) -> None:
    (server,) = make_servers(1, latency_s=0.5)
    async with running([server.url], max_queue_wait_s=30, probe_timeout_s=0.5) as generator:
        rendering = asyncio.create_task(generator.generate(ImageRequest(prompt="a")))
        waiting = asyncio.create_task(generator.generate(ImageRequest(prompt="b")))
        await eventually(lambda: generator.queue_length() == 1)
        server.down()
        # The render dies with its connection; the waiter gives up after the first
        # cooldown and a probe (the outage), not after its 30 s of patience for a slot.
        with pytest.raises(ModelUnavailable):
            await rendering
        with pytest.raises(ModelUnavailable, match=r"^no Stable Diffusion instance is up$"):
            await waiting
        assert generator.stats().outage
        server.up()
        await eventually(lambda: not generator.stats().outage)
        assert_real_image(await generator.generate(ImageRequest(prompt="c")))


async def test_a_slot_handed_to_a_job_cancelled_before_it_woke_is_not_lost() -> None:
    # The narrow race no server can provoke on demand: the slot is handed over, then the
    # waiter is cancelled before it runs again. The pool alone shows it deterministically.
    instance = Instance(Endpoint("http://sd.invalid"), slots=1, healthy=True)
    pool = SlotPool(
        [instance], queue_max=4, cooldown_base_s=1.0, cooldown_max_s=1.0, probe_grace_s=1.0
    )
    deadline = time.monotonic() + 5
    first = await pool.acquire(deadline)
    waiter = asyncio.create_task(pool.acquire(deadline))
    await eventually(lambda: pool.queue_length() == 1)
    pool.release(first, held_s=0.0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (instance.busy, instance.jobs, pool.queue_length()) == (0, 1, 0)
    assert await pool.acquire(deadline) is instance


@pytest.mark.slow  # renders of up to 0.6 s
async def test_a_slow_instance_does_not_take_a_job_a_fast_one_finishes_sooner(
    make_servers: MakeServers,
) -> None:
    fast, slow = make_servers(2, latency_s=0.1)
    slow.knobs.latency_s = 0.6
    async with running([fast.url, slow.url]) as generator:
        await asyncio.gather(*(generator.generate(ImageRequest("warm-up")) for _ in range(2)))
        before = slow.counters.renders
        await asyncio.gather(*(generator.generate(ImageRequest(f"b{i}")) for i in range(3)))
        # fast, fast, fast ends by ~0.3 s; any job on the slow one would end at ~0.6 s.
        assert slow.counters.renders == before
        assert by_url(generator, fast.url).busy == 0


@pytest.mark.slow  # renders of half a second beside a stuck one
async def test_a_stuck_fast_instance_does_not_hold_jobs_back(make_servers: MakeServers) -> None:
    fast, slow = make_servers(2, latency_s=0.1)
    slow.knobs.latency_s = 0.5
    async with running([fast.url, slow.url], timeout_s=20.0) as generator:
        await asyncio.gather(*(generator.generate(ImageRequest("warm-up")) for _ in range(2)))
        fast.knobs.hang = True
        stuck = asyncio.create_task(generator.generate(ImageRequest("stuck")))
        await eventually(lambda: by_url(generator, fast.url).busy == 1)
        image = await generator.generate(ImageRequest("after"))
        assert image.instance == slow.url
        # Served while the stuck render still holds the fast one, not after its 20 s timeout.
        assert not stuck.done() and by_url(generator, fast.url).busy == 1
        stuck.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stuck
