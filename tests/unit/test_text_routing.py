"""Endpoint health and routing on a fake clock: cooldowns, probes, weights, latency, room."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from adapters.openai_text import TextEndpoint
from adapters.openai_text.failures import Failure
from adapters.openai_text.health import Health
from adapters.openai_text.router import Router


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _health(clock: FakeClock) -> Health:
    return Health(threshold=3, base_s=5, max_s=60, clock=clock)


def _fail(health: Health, retry_after_s: float | None = None, rate_limited: bool = False) -> bool:
    return health.failed("HTTP 500", retry_after_s=retry_after_s, asks_to_wait=rate_limited)


def test_three_failures_in_a_row_cool_an_endpoint_down_for_five_seconds() -> None:
    clock = FakeClock()
    health = _health(clock)
    assert not _fail(health) and not _fail(health) and health.healthy
    assert _fail(health)
    assert (health.state, health.remaining_s(), health.cooldowns) == ("cooling", 5, 1)
    clock.now += 4.5
    assert health.remaining_s() == pytest.approx(0.5)


def test_an_answer_between_failures_resets_the_count() -> None:
    health = _health(FakeClock())
    _fail(health), _fail(health)
    health.succeeded()
    _fail(health), _fail(health)
    assert health.healthy


def test_a_429_with_retry_after_cools_down_at_once_never_shorter_than_asked() -> None:
    clock = FakeClock()
    short, long = _health(clock), _health(clock)
    assert _fail(short, retry_after_s=1, rate_limited=True)
    assert _fail(long, retry_after_s=12, rate_limited=True)
    assert (short.remaining_s(), long.remaining_s()) == (5, 12)


def test_failed_probes_double_the_cooldown_up_to_a_minute() -> None:
    clock = FakeClock()
    health = _health(clock)
    for _ in range(3):
        _fail(health)
    lengths = []
    for _ in range(6):
        clock.now += health.remaining_s()
        health.probe_started()
        assert health.remaining_s() == 0 and not health.healthy
        lengths.append(health.probe_failed("cannot connect"))
    assert lengths == [10, 20, 40, 60, 60, 60]
    assert health.cooldowns == 1  # one outage, however many probes it took


def test_only_a_real_answer_resets_the_doubling() -> None:
    clock = FakeClock()
    health = _health(clock)
    for _ in range(3):
        _fail(health)
    health.probe_started()
    health.probe_passed()
    assert health.healthy
    for _ in range(3):
        _fail(health)
    assert health.remaining_s() == 10  # the probe passed, but no real call did
    health.probe_passed()
    health.succeeded()
    for _ in range(3):
        _fail(health)
    assert health.remaining_s() == 5


def test_late_failures_while_cooling_do_not_restart_it_but_a_longer_retry_after_extends_it() -> (
    None
):
    clock = FakeClock()
    health = _health(clock)
    for _ in range(3):
        _fail(health)
    assert not _fail(health) and health.remaining_s() == 5
    assert not _fail(health, retry_after_s=30, rate_limited=True)
    assert health.remaining_s() == 30 and health.cooldowns == 1


def _endpoint(name: str, weight: float = 1, *, vision: bool = True, room: int = 10) -> TextEndpoint:
    return TextEndpoint(
        name,
        lambda: None,  # type: ignore[arg-type,return-value]  # never started here
        model="m",
        vision_model="v" if vision else None,
        weight=weight,
        max_concurrency=room,
    )


async def _no_probe(endpoint: TextEndpoint) -> None:
    raise AssertionError("no probe in these tests")


def _router(*endpoints: TextEndpoint, clock: FakeClock | None = None) -> Router:
    return Router(endpoints, _no_probe, rng=random.Random(7), clock=clock or FakeClock())


def _shares(router: Router, vision: bool = False, draws: int = 6000) -> Counter[str]:
    return Counter(router.choose(router.endpoints, vision).name for _ in range(draws))


def test_calls_are_shared_by_weight() -> None:
    shares = _shares(_router(_endpoint("a", 1), _endpoint("b", 2)))
    assert shares["b"] / shares["a"] == pytest.approx(2, rel=0.1)


def test_an_endpoint_three_times_slower_gets_a_third_of_the_share() -> None:
    fast, slow = _endpoint("fast"), _endpoint("slow")
    fast.answered_in(False, 1.0)
    slow.answered_in(False, 3.0)
    shares = _shares(_router(fast, slow))
    assert shares["fast"] / shares["slow"] == pytest.approx(3, rel=0.15)


def test_an_unmeasured_endpoint_counts_as_typical() -> None:
    known, new = _endpoint("known"), _endpoint("new")
    known.answered_in(False, 2.0)
    shares = _shares(_router(known, new))
    assert shares["new"] / shares["known"] == pytest.approx(1, rel=0.1)


def test_text_and_vision_latencies_are_kept_apart() -> None:
    a, b = _endpoint("a"), _endpoint("b")
    a.answered_in(True, 9.0)  # a slow vision call must not push text calls away from it
    a.answered_in(False, 1.0)
    b.answered_in(False, 1.0)
    shares = _shares(_router(a, b))
    assert shares["a"] / shares["b"] == pytest.approx(1, rel=0.1)


def test_acquire_skips_cooling_and_full_endpoints_and_takes_a_slot() -> None:
    clock = FakeClock()
    cooling, full, free = _endpoint("cooling"), _endpoint("full", room=1), _endpoint("free")
    router = _router(cooling, full, free, clock=clock)
    cooling.health.failed("HTTP 503", retry_after_s=10, asks_to_wait=True)
    full.in_flight = 1
    chosen = [router.acquire(router.endpoints, vision=False) for _ in range(5)]
    assert {endpoint.name for endpoint in chosen if endpoint} == {"free"}
    assert free.in_flight == 5
    full.in_flight = 0
    free.in_flight = 10
    assert router.acquire([cooling, free], vision=False) is None


def test_vision_steps_only_go_to_endpoints_with_a_vision_model() -> None:
    router = _router(_endpoint("text-only", vision=False), _endpoint("sees"))
    assert [e.name for e in router.capable(vision=True)] == ["sees"]
    assert [e.name for e in router.capable(vision=False)] == ["text-only", "sees"]


def test_refusals_and_wrong_keys_count_but_never_cool_an_endpoint_down() -> None:
    endpoint = _endpoint("a")
    router = _router(endpoint)
    for _ in range(5):
        router.failed(endpoint, Failure("config", "HTTP 401", False, outcome="config_error"))
    assert endpoint.health.healthy and endpoint.stats()["calls"]["config_error"] == 5


def test_stats_show_calls_by_outcome_cooldowns_and_health() -> None:
    clock = FakeClock()
    endpoint = _endpoint("eu")
    router = _router(endpoint, clock=clock)
    router.succeeded(endpoint, vision=False, seconds=0.4)
    endpoint.health.failed("x", retry_after_s=2, asks_to_wait=True)  # bypasses the task
    stats = endpoint.stats()
    assert stats["calls"]["ok"] == 1 and stats["calls"]["timeout"] == 0
    assert (stats["cooldowns_total"], stats["healthy"], stats["state"]) == (1, False, "cooling")
    assert stats["cooldown_remaining_seconds"] == 5 and stats["endpoint"] == "eu"


def test_endpoint_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="own name"):
        _router(_endpoint("a"), _endpoint("a"))
