"""Time spent in each stage, from the saves that name it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.experiment import Stage
from domain.timeline import SaveMark, stage_durations

T0 = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)


def _mark(minute: int, stage: Stage) -> SaveMark:
    return SaveMark(T0 + timedelta(minutes=minute), stage, (0, 0, 0))


def test_a_stage_lasts_from_the_save_that_names_it_to_the_one_that_leaves_it() -> None:
    marks = [
        _mark(2, Stage.RAPID_DIVERGENCE),
        _mark(5, Stage.RAPID_DIVERGENCE),  # an autosave in the same stage changes nothing
        _mark(12, Stage.DEEP_DIVERGENCE),
        _mark(20, Stage.RAPID_DIVERGENCE),  # back again: the time adds up
        _mark(22, Stage.CONVERGENCE),
    ]
    spent = stage_durations(marks, T0, T0 + timedelta(minutes=30))
    assert spent == [
        (Stage.NOT_READY, 120.0),
        (Stage.RAPID_DIVERGENCE, 600.0 + 120.0),
        (Stage.DEEP_DIVERGENCE, 480.0),
        (Stage.CONVERGENCE, 480.0),
    ]


def test_no_saves_is_the_whole_session_not_ready() -> None:
    assert stage_durations([], T0, T0 + timedelta(minutes=3)) == [(Stage.NOT_READY, 180.0)]
