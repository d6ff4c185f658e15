"""Earliest-completion scheduling over instances of different speeds (a pure function)."""

from __future__ import annotations

from adapters.sd_webui.instance import Instance, parse_endpoint
from adapters.sd_webui.schedule import plan, record_render


def _instance(name: str, render_s: float | None, *, running: tuple[float, ...] = ()) -> Instance:
    instance = Instance(parse_endpoint(f"http://{name}:7860"), slots=1, healthy=True)
    instance.render_s = render_s
    instance.running = list(running)
    instance.busy = len(running)
    return instance


def test_without_timings_the_pool_keeps_its_first_free_rule() -> None:
    assert plan([_instance("a", None), _instance("b", None)], 3, now=10.0) is None


def test_equal_instances_serve_waiters_in_order_on_free_slots() -> None:
    a, b = _instance("a", 1.0), _instance("b", 1.0, running=(9.5,))
    result = plan([a, b], 2, now=10.0)
    assert result is not None and result.now == [(0, a)]


def test_a_job_waits_for_a_fast_instance_that_finishes_it_sooner() -> None:
    fast, slow = _instance("fast", 1.0, running=(9.8,)), _instance("slow", 3.0)
    result = plan([fast, slow], 1, now=10.0)
    assert result is not None and result.now == []  # fast frees at 10.8, done at 11.8 < 13
    assert result.review_at is not None and 11.7 < result.review_at < 11.9


def test_a_job_does_not_wait_for_an_instance_only_a_few_percent_faster() -> None:
    # Equal GPUs measure 1.00 s and 1.04 s: b finishes at 11.04, a (busy) at 11.00.
    a, b = _instance("a", 1.0, running=(9.0,)), _instance("b", 1.04)
    result = plan([a, b], 1, now=10.0)
    assert result is not None and result.now == [(0, b)]


def test_the_next_waiter_takes_the_slow_slot_when_that_is_quickest_for_it() -> None:
    fast, slow = _instance("fast", 1.0, running=(9.8,)), _instance("slow", 1.5)
    result = plan([fast, slow], 2, now=10.0)
    # Waiter 0: fast (11.8) vs slow (11.5): slow. Waiter 1: fast at 11.8.
    assert result is not None and result.now == [(0, slow)]


def test_an_overdue_render_is_not_waited_for() -> None:
    stuck, slow = _instance("stuck", 1.0, running=(7.0,)), _instance("slow", 3.0)
    result = plan([stuck, slow], 1, now=10.0)  # 3 s into a 1 s render: maybe hung
    assert result is not None and result.now == [(0, slow)]


def test_estimates_follow_recent_renders() -> None:
    instance = _instance("a", None)
    record_render(instance, 2.0)
    assert instance.render_s == 2.0
    for _ in range(20):
        record_render(instance, 1.0)
    assert instance.render_s is not None and abs(instance.render_s - 1.0) < 0.01
