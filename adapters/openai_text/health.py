"""One endpoint's health: failures in a row, cooldowns that double, and the probe that ends them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["healthy", "cooling", "probing"]

FAILURES_BEFORE_COOLDOWN = 3
COOLDOWN_BASE_S = 5.0
COOLDOWN_MAX_S = 60.0


class Health:
    """When an endpoint may take traffic.

    Healthy until it fails `threshold` times in a row, or answers 429 with Retry-After;
    then it cools down (`base_s`, doubling with every cooldown up to `max_s`, never
    shorter than the Retry-After) and takes no traffic until a probe passes. Only a
    real answer resets the doubling: an endpoint whose probes pass but whose real
    calls fail must not bounce back every `base_s`.
    """

    def __init__(
        self,
        *,
        threshold: int = FAILURES_BEFORE_COOLDOWN,
        base_s: float = COOLDOWN_BASE_S,
        max_s: float = COOLDOWN_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or base_s <= 0 or max_s < base_s:
            raise ValueError("threshold >= 1 and 0 < base_s <= max_s are required")
        self._threshold = threshold
        self._base_s = base_s
        self._max_s = max_s
        self._clock = clock
        self.state: State = "healthy"
        self.failures_in_a_row = 0
        self.cooldowns = 0  # times it was taken out of traffic (for the metrics)
        self.cooling_until = 0.0
        self.reason = ""  # the failure that cooled it down, for the fail-fast message
        self._level = 0  # how many cooldowns since its last real answer

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"

    def remaining_s(self) -> float:
        """Seconds until its cooldown ends (0 when healthy or when its probe is due)."""
        if self.healthy:
            return 0.0
        return max(self.cooling_until - self._clock(), 0.0)

    def succeeded(self) -> None:
        """A real call answered. A late answer from a call sent before a cooldown does not
        end that cooldown: only a probe does."""
        self.failures_in_a_row = 0
        if self.healthy:
            self._level = 0

    def failed(self, reason: str, *, retry_after_s: float | None, asks_to_wait: bool) -> bool:
        """Count a failed call; True when this one started a cooldown."""
        if not self.healthy:
            # Calls sent before the cooldown still come back; they only may lengthen it.
            if retry_after_s is not None:
                self.cooling_until = max(self.cooling_until, self._clock() + retry_after_s)
            return False
        self.failures_in_a_row += 1
        if not asks_to_wait and self.failures_in_a_row < self._threshold:
            return False
        self.cooldowns += 1
        self._cool(reason, retry_after_s)
        return True

    def probe_started(self) -> None:
        self.state = "probing"

    def probe_passed(self) -> None:
        self.state = "healthy"
        self.failures_in_a_row = 0

    def probe_failed(self, reason: str, retry_after_s: float | None = None) -> float:
        """Cool down again, longer; returns the new cooldown's length."""
        return self._cool(f"{reason} (probe)", retry_after_s)

    def _cool(self, reason: str, retry_after_s: float | None) -> float:
        length = min(self._base_s * 2 ** min(self._level, 30), self._max_s)
        length = max(length, retry_after_s or 0.0)
        self._level += 1
        self.state = "cooling"
        self.failures_in_a_row = 0
        self.cooling_until = self._clock() + length
        self.reason = reason
        return length
