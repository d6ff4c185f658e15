"""Several text endpoints on loopback: failover, cooldown, probes, weights and vision routing."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.openai_text import ChatCompletionsTextGenerator, TextEndpoint
from application.ports import TextRequest
from domain.errors import ModelUnavailable
from entrypoints.adapter_builders import text_generator
from entrypoints.settings import Settings
from tests.fakes.openai_server import FakeOpenAIServer, Fault
from tests.integration.test_openai_text import PNG, PRODUCTS, running

# Slow: endpoints cool down and come back after real probes (waits of seconds).
pytestmark = pytest.mark.slow

KEYS = ("sk-a-0123456789", "sk-b-0123456789", "sk-c-0123456789")
VISION_STEP = TextRequest("deep_divergence/identify", "这是什么？", 1, images=(PNG,))


@pytest.fixture(scope="module")
def servers() -> Iterator[list[FakeOpenAIServer]]:
    fakes = [FakeOpenAIServer(api_key=key).start() for key in KEYS]
    try:
        yield fakes
    finally:
        for fake in fakes:
            fake.stop()


@pytest.fixture
def a_b_c(servers: list[FakeOpenAIServer]) -> list[FakeOpenAIServer]:
    for fake in servers:
        fake.reset()
    return servers


def _endpoint(
    name: str, fake: FakeOpenAIServer | str, key: str, *, vision: bool = True
) -> TextEndpoint:
    url = fake if isinstance(fake, str) else fake.openai_base_url
    return TextEndpoint.openai(
        name,
        base_url=url,
        api_key=key,
        model=f"{name}-m",
        vision_model=f"{name}-v" if vision else None,
    )


def _generator(*endpoints: TextEndpoint, **policy: Any) -> ChatCompletionsTextGenerator:
    knobs: dict[str, Any] = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "step_deadline_s": 3.0}
    return ChatCompletionsTextGenerator(endpoints, rng=random.Random(3), **{**knobs, **policy})


def _stats(generator: ChatCompletionsTextGenerator) -> dict[str, Any]:
    return {row["endpoint"]: row for row in generator.endpoint_stats()}


def _real_calls(fake: FakeOpenAIServer) -> int:
    return sum(1 for seen in fake.requests if seen.max_tokens != 1)


async def _steps(
    generator: ChatCompletionsTextGenerator, count: int, at_once: int = 5
) -> list[Any]:
    """`count` steps, `at_once` at a time; the answers or the errors, in order."""
    results: list[Any] = []
    for start in range(0, count, at_once):
        batch = [generator.complete(PRODUCTS) for _ in range(min(at_once, count - start))]
        results += await asyncio.gather(*batch, return_exceptions=True)
    return results


def _refusing_port() -> tuple[socket.socket, str]:
    # A bound socket that never listens: the port stays ours and refuses connections.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.mark.parametrize("death", ["server_error", "rate_limited", "hang", "refused"])
async def test_one_dead_endpoint_fails_no_step(a_b_c: list[FakeOpenAIServer], death: str) -> None:
    dead, alive = a_b_c[0], a_b_c[1]
    refusing, url = _refusing_port()
    dead.always = {
        "server_error": Fault.server_error(500),
        "rate_limited": Fault.rate_limited(retry_after_s=30),
        "hang": Fault.hang(),
        "refused": None,
    }[death]
    target = url if death == "refused" else dead
    with refusing:
        async with running(
            _generator(_endpoint("dead", target, KEYS[0]), _endpoint("alive", alive, KEYS[1]))
        ) as generator:
            results = await _steps(generator, 30)
            stats = _stats(generator)
    assert [r for r in results if not hasattr(r, "text")] == []
    assert {r.endpoint for r in results} == {"alive"}
    assert stats["dead"]["cooldowns_total"] == 1 and stats["dead"]["healthy"] is False
    assert stats["alive"]["calls"]["ok"] == 30 and stats["alive"]["healthy"] is True
    # Found out within the first batch: after that the dead one is left alone.
    failed_calls = sum(stats["dead"]["calls"].values())
    assert 1 <= failed_calls <= 3 + 5
    if death != "refused":
        assert _real_calls(dead) == failed_calls


async def test_a_rate_limited_endpoint_cools_down_for_its_retry_after_and_the_step_moves_on(
    a_b_c: list[FakeOpenAIServer],
) -> None:
    limited, other = a_b_c[0], a_b_c[1]
    limited.always = Fault.rate_limited(retry_after_s=20)
    generator = _generator(
        _endpoint("limited", limited, KEYS[0]), _endpoint("other", other, KEYS[1])
    )
    async with running(generator):
        answers = [await generator.complete(PRODUCTS) for _ in range(6)]
        stats = _stats(generator)["limited"]
    assert {answer.endpoint for answer in answers} == {"other"}
    assert _real_calls(limited) <= 1 and stats["calls"]["rate_limited"] == _real_calls(limited)
    if _real_calls(limited):
        assert stats["state"] == "cooling" and stats["cooldown_remaining_seconds"] > 15


async def test_both_dead_the_first_step_finds_out_the_next_ones_fail_at_once_until_a_probe_passes(
    a_b_c: list[FakeOpenAIServer],
) -> None:
    a, b = a_b_c[0], a_b_c[1]
    a.always = b.always = Fault.server_error(503)
    generator = _generator(
        _endpoint("a", a, KEYS[0]), _endpoint("b", b, KEYS[1]), cooldown_base_s=0.5
    )
    async with running(generator):
        with pytest.raises(ModelUnavailable, match="HTTP 503") as first:
            await generator.complete(PRODUCTS)
        assert "deadline of 3s" in str(first.value)  # it waited for a probe within it
        assert first.value.retry_after_s is not None
        assert _real_calls(a) >= 3 and _real_calls(b) >= 3
        a.always = b.always = None  # back, but only a probe may say so
        tried = _real_calls(a) + _real_calls(b)
        # At once: the known outage is reported before any call (none is made).
        with pytest.raises(ModelUnavailable, match="cooling down") as later:
            await generator.complete(PRODUCTS)
        assert later.value.retry_after_s is not None
        assert _real_calls(a) + _real_calls(b) == tried
        answer = await _after_a_probe(generator)
    assert answer.endpoint in {"a", "b"}
    assert any(seen.max_tokens == 1 for seen in a.requests + b.requests)


async def _after_a_probe(generator: ChatCompletionsTextGenerator) -> Any:
    for _ in range(200):  # generous: the cooldown here is 0.5-1 s
        try:
            return await generator.complete(PRODUCTS)
        except ModelUnavailable:
            await asyncio.sleep(0.05)
    raise AssertionError("no probe brought an endpoint back")


async def test_a_three_times_slower_endpoint_gets_less_traffic(
    a_b_c: list[FakeOpenAIServer],
) -> None:
    fast, slow = a_b_c[0], a_b_c[1]
    fast.latency_s, slow.latency_s = 0.03, 0.09
    generator = _generator(_endpoint("fast", fast, KEYS[0]), _endpoint("slow", slow, KEYS[1]))
    async with running(generator):
        results = await _steps(generator, 200, at_once=10)
    assert all(hasattr(result, "text") for result in results)
    # Equal weights alone would give each half; by measured latency the slow one gets
    # about a quarter to a third (the fakes' overhead narrows the 3x a little).
    assert slow.request_count < 0.4 * len(results) < fast.request_count


async def test_vision_steps_go_only_to_endpoints_with_a_vision_model(
    a_b_c: list[FakeOpenAIServer],
) -> None:
    a, b, c = a_b_c
    generator = _generator(
        _endpoint("a", a, KEYS[0], vision=False),
        _endpoint("b", b, KEYS[1]),
        _endpoint("c", c, KEYS[2], vision=False),
    )
    async with running(generator):
        vision = [await generator.complete(VISION_STEP) for _ in range(8)]
        text = [await generator.complete(PRODUCTS) for _ in range(12)]
        b.always = Fault.server_error(500)
        with pytest.raises(ModelUnavailable):
            for _ in range(3):
                await generator.complete(VISION_STEP)
        with pytest.raises(ModelUnavailable, match="cooling down"):
            await generator.complete(VISION_STEP)  # text endpoints do not stand in
        still = await generator.complete(PRODUCTS)
    assert {answer.endpoint for answer in vision} == {"b"}
    assert all(
        seen.has_images for seen in b.requests if seen.max_tokens != 1 and seen.model == "b-v"
    )
    assert not any(seen.has_images for seen in a.requests + c.requests)
    assert {answer.endpoint for answer in text} - {"b"}
    assert still.endpoint in {"a", "c"}


async def test_configured_endpoints_use_their_own_kind_and_key(
    a_b_c: list[FakeOpenAIServer],
) -> None:
    azure, openai = a_b_c[0], a_b_c[1]
    entries = [
        {
            "name": "region-1",
            "kind": "azure",
            "endpoint": azure.azure_endpoint,
            "api_key_env": "REGION_1_KEY",
            "deployment": "gpt-eu",
            "vision_deployment": "gpt-eu-v",
            "weight": 3,
        },
        {
            "name": "fallback",
            "kind": "openai",
            "base_url": openai.openai_base_url,
            "api_key": KEYS[1],
            "model": "m",
            "max_concurrency": 2,
        },
    ]
    import json

    settings = Settings.load(
        {
            "INSPILOT_TEXT_BACKEND": "endpoints",
            "INSPILOT_TEXT_ENDPOINTS": json.dumps(entries),
            "REGION_1_KEY": KEYS[0],
        }
    )
    generator = text_generator(settings)
    async with running(generator):
        answers = await _steps(generator, 12, at_once=4)
        seen_vision = await generator.complete(VISION_STEP)
    assert {answer.endpoint for answer in answers} <= {"region-1", "fallback"}
    assert seen_vision.endpoint == "region-1"
    assert {(s.flavor, s.deployment, s.credential) for s in azure.requests} <= {
        ("azure", "gpt-eu", KEYS[0]),
        ("azure", "gpt-eu-v", KEYS[0]),
    }
    assert {(s.flavor, s.model, s.credential) for s in openai.requests} <= {
        ("openai", "m", KEYS[1])
    }
    assert openai.max_in_flight <= 2
