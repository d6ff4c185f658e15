"""A participant's session over time: every save (its stage and how many schemes each
stage held), so researchers see when stages changed and how long each lasted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.experiment import SCHEME_STAGES, Experiment, Stage

SAVE_MARKS_KEPT = 5000
"""Saves remembered per participant (an autosave every 10 s for 13 hours): a bound, so a
client saving in a loop cannot grow a session without end."""


@dataclass(frozen=True)
class SaveMark:
    """One save as it arrived: when, the stage it named, the schemes per scheme stage."""

    at: datetime
    stage: Stage
    schemes: tuple[int, ...]

    @classmethod
    def of(cls, experiment: Experiment, at: datetime) -> SaveMark:
        counts = tuple(len(experiment.schemes_of(stage)) for stage in SCHEME_STAGES)
        return cls(at, experiment.current_stage, counts)


def stage_durations(
    marks: Sequence[SaveMark], started: datetime | None, until: datetime
) -> list[tuple[Stage, float]]:
    """Seconds spent in each stage, in the order first reached: a stage lasts from the
    save that first names it until the save that names another (the last one until
    `until`); before the first save the participant is in the stage a session starts in."""
    spent: dict[Stage, float] = {}
    stage, since = Stage.NOT_READY, started
    for mark in marks:
        if mark.stage is stage:
            continue
        if since is not None:
            spent[stage] = spent.get(stage, 0.0) + max((mark.at - since).total_seconds(), 0.0)
        stage, since = mark.stage, mark.at
    if since is not None:
        spent[stage] = spent.get(stage, 0.0) + max((until - since).total_seconds(), 0.0)
    return list(spent.items())
