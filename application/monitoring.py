"""RunMonitor: the runs in flight and the text model's recent errors, for the live dashboard."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

from application.ports import GenerationObserver, RunStarted
from domain.generation import GenerationRecord

RECENT_ERRORS = 20


@dataclass(frozen=True)
class TextError:
    """One failed text-model attempt: when, which step, what went wrong."""

    at: datetime
    step: str
    error: str
    model: str | None
    generation_id: str


class RunMonitor(GenerationObserver):
    """Kept in memory for the "now" panel; the records themselves are the durable history.

    Runs are held from start to finish only, so memory is bounded by the concurrency;
    errors by `keep`. Event-loop only, like the gateway that feeds it.
    """

    def __init__(self, keep: int = RECENT_ERRORS) -> None:
        self._in_flight: dict[str, RunStarted] = {}
        self._errors: deque[TextError] = deque(maxlen=keep)

    def run_started(self, run: RunStarted) -> None:
        self._in_flight[run.id] = run

    def run_finished(self, record: GenerationRecord) -> None:
        self._in_flight.pop(record.id, None)
        for step in record.text_steps:
            if step.error is not None:
                self._errors.append(
                    TextError(step.finished_at, step.name, step.error, step.model, record.id)
                )

    def in_flight(self) -> list[RunStarted]:
        """Oldest first: the run waiting longest is the one an operator looks at."""
        return sorted(self._in_flight.values(), key=lambda run: run.started_at)

    def recent_text_errors(self) -> list[TextError]:
        """Newest first."""
        return list(reversed(self._errors))
