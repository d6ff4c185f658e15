"""One text step's calls: to a healthy endpoint, on to another at once, or a fast honest failure."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import openai

from adapters.openai_text.endpoint import TextEndpoint
from adapters.openai_text.failures import CredentialUnavailable, Failure, backoff_s, classify
from adapters.openai_text.messages import read_answer, unwrap_choices
from adapters.openai_text.router import Router
from application.ports import TextAnswer, TextRequest
from domain.errors import ContentRejected, ModelError, ModelUnavailable

log = logging.getLogger("inspilot.text")


class StepCall:
    """Calls for one step until an answer, a final failure, or the step's deadline.

    A connection error, timeout, 429 or 5xx sends the step at once to an endpoint it
    has not tried yet; when every healthy one has failed it, it backs off and tries
    again. When every endpoint able to serve it is cooling down, a step that has not
    called yet fails at once (the outage is known, waiting would only burn its
    deadline); a step whose own calls found the outage may wait, within its deadline,
    for a probe to bring one back.
    """

    def __init__(
        self,
        router: Router,
        request: TextRequest,
        create: dict[str, Any],
        *,
        deadline_s: float,
        backoff: tuple[float, float],
        constrained: bool,
    ) -> None:
        self._router = router
        self._step = request.step
        self._vision = bool(request.images)
        self._create = create
        self._deadline_s = deadline_s
        self._backoff = backoff
        self._constrained = constrained
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        self._deadline = self._started + deadline_s
        self._attempts = 0
        self._failed_here: set[str] = set()
        self._outage: Failure | None = None  # the latest failure that was not a timeout
        self._last: Failure | None = None
        self._where = f"text step '{request.step}'"
        # A study condition's text model (every step, vision included) and endpoints.
        self._model = request.model
        self._only = frozenset(request.endpoints)

    async def run(self) -> TextAnswer:
        capable = self._router.capable(self._vision)
        if self._only:
            capable = [endpoint for endpoint in capable if endpoint.name in self._only]
        if not capable and self._only:
            raise ModelUnavailable(
                f"{self._where}: none of the condition's text endpoints "
                f"({', '.join(sorted(self._only))}) can take this step"
            )
        if not capable:
            raise ModelUnavailable(
                f"{self._where}: no text endpoint has a vision model; this is a configuration "
                "problem (set vision_deployment or vision_model)"
            )
        while True:
            endpoint = self._router.acquire(self._fresh(capable), self._vision)
            if endpoint is None:
                await self._wait_or_fail(capable)
                continue
            answer = await self._attempt(endpoint, capable)
            if answer is not None:
                return answer

    def _fresh(self, capable: list[TextEndpoint]) -> list[TextEndpoint]:
        healthy = [e for e in capable if e.health.healthy]
        return [e for e in healthy if e.name not in self._failed_here] or healthy

    async def _attempt(
        self, endpoint: TextEndpoint, capable: list[TextEndpoint]
    ) -> TextAnswer | None:
        self._attempts += 1
        model = self._model or endpoint.model_for(self._vision)
        where = self._where = f"text step '{self._step}' on endpoint '{endpoint.name}' ({model})"
        # Leave time for the endpoints not tried yet: a hung one must not take the whole deadline.
        untried = sum(1 for e in capable if e.health.healthy and e.name not in self._failed_here)
        timeout = max(self._deadline - self._loop.time(), 0.001) / max(untried, 1)
        sent = self._loop.time()
        try:
            async with asyncio.timeout(timeout):
                completion = await endpoint.client.chat.completions.create(
                    model=model, **self._create, timeout=timeout
                )
        except (TimeoutError, openai.OpenAIError, CredentialUnavailable) as exc:
            failure = classify(exc)
            if failure.kind == "timeout":
                failure = replace(failure, reason=f"no answer within {timeout:.3g}s")
            self._router.failed(endpoint, failure)
            self._router.release(endpoint)
            await self._after_failure(endpoint, failure, capable, exc)
            return None
        except BaseException:
            self._router.release(endpoint)  # cancelled: the client left; not the endpoint's fault
            raise
        self._router.release(endpoint)
        try:
            answer = read_answer(completion, model, where)
        except ModelError as exc:
            outcome = "content_filter" if isinstance(exc, ContentRejected) else "invalid_answer"
            self._router.answered_badly(endpoint, outcome)
            raise
        self._router.succeeded(endpoint, self._vision, self._loop.time() - sent)
        if self._attempts > 1:
            log.info("%s answered after %d attempts", where, self._attempts)
        answer = replace(answer, endpoint=endpoint.name)
        return unwrap_choices(answer) if self._constrained else answer

    async def _after_failure(
        self,
        endpoint: TextEndpoint,
        failure: Failure,
        capable: list[TextEndpoint],
        exc: BaseException,
    ) -> None:
        """Return to try again (at once, or after a backoff); raise when the step is over."""
        if not failure.retryable:
            raise self._error(failure) from exc
        self._failed_here.add(endpoint.name)
        self._last = failure
        if failure.kind != "timeout":
            self._outage = failure
        healthy = [e for e in capable if e.health.healthy]
        if any(e.name not in self._failed_here for e in healthy):
            log.info("%s: %s; trying another endpoint", self._where, failure.logged)
            return
        if not healthy:
            return  # every one is cooling down: run() decides whether this step may wait
        delay = self._next_delay(failure)
        remaining = self._deadline - self._loop.time()
        if failure.retry_after_s is None:
            # A long jitter draw must not forfeit the deadline: keep half of it for the attempt.
            delay = min(delay, remaining / 2)
        if delay >= remaining:
            if failure.kind == "timeout":
                raise self._error(self._timeout_failure(queued=False)) from exc
            raise self._error(self._no_time_left(failure)) from exc
        log.warning(
            "%s: %s; retry %d in %.2fs (%.1fs left)",
            self._where,
            failure.logged,
            self._attempts,
            delay,
            remaining,
        )
        await asyncio.sleep(delay)
        self._failed_here.clear()

    async def _wait_or_fail(self, capable: list[TextEndpoint]) -> None:
        if any(e.health.healthy for e in capable):
            # Every healthy endpoint is at its max_concurrency: queue for a slot.
            try:
                await self._router.wait_for_change(self._deadline)
            except TimeoutError:
                raise self._error(self._timeout_failure(queued=True)) from None
            return
        resume_in = min(e.health.remaining_s() for e in capable)
        if self._attempts == 0:
            raise _cooling_down(self._where, capable, resume_in)
        if self._loop.time() + resume_in < self._deadline:
            try:
                await self._router.wait_for_change(self._deadline)
                return
            except TimeoutError:
                resume_in = min(e.health.remaining_s() for e in capable)
        raise self._error(self._past_deadline(resume_in))

    def _error(self, failure: Failure) -> ModelError:
        log.warning("%s failed: %s", self._where, failure.logged)
        return failure.to_error(self._where, self._attempts, self._loop.time() - self._started)

    def _timeout_failure(self, *, queued: bool) -> Failure:
        """What to blame when the deadline ran out: an earlier outage, the queue, or the model."""
        ran_out = f"the step's deadline of {self._deadline_s:g}s ran out"
        if self._outage is not None:
            # The service was failing; the last attempt merely had too little time left.
            return replace(
                self._outage, kind="unavailable", reason=f"{self._outage.reason}, then {ran_out}"
            )
        if queued:
            # Saying so tells an operator to raise max_concurrency, not to blame the model.
            slots = sum(e.max_concurrency for e in self._router.capable(self._vision))
            reason = f"still waiting for one of {slots} request slots when {ran_out}"
            return Failure("timeout", reason, retryable=False)
        return Failure("timeout", f"no answer before {ran_out}", retryable=False)

    def _no_time_left(self, failure: Failure) -> Failure:
        if failure.retry_after_s is not None:
            why = f"the service asked to wait {failure.retry_after_s:g}s"
        else:
            why = "no time was left for another attempt"
        reason = f"{failure.reason}; {why} within the step's deadline of {self._deadline_s:g}s"
        return replace(failure, reason=reason)

    def _past_deadline(self, resume_in: float) -> Failure:
        """This step found the outage and may not wait beyond its deadline for the end of it."""
        failure = self._outage or self._last or Failure("unavailable", "it failed", True)
        asked = ""
        if failure.retry_after_s is not None:
            asked = f"the service asked to wait {failure.retry_after_s:g}s; "
        reason = (
            f"{failure.reason}; {asked}every endpoint that can serve it cools down for "
            f"{resume_in:.0f}s more, past the step's deadline of {self._deadline_s:g}s"
        )
        return replace(failure, kind="unavailable", reason=reason, retry_after_s=resume_in)

    def _next_delay(self, failure: Failure) -> float:
        """The server's Retry-After first (plus jitter), else exponential backoff with jitter."""
        base_s, max_s = self._backoff
        if failure.retry_after_s is not None:
            # A little jitter on top: steps throttled together must not all return together.
            return failure.retry_after_s + backoff_s(1, base_s, base_s)
        return backoff_s(self._attempts, base_s, max_s)


def _cooling_down(where: str, capable: list[TextEndpoint], resume_in: float) -> ModelUnavailable:
    """The fast failure: the outage is known already, so say so instead of trying."""
    details = "; ".join(
        f"'{e.name}' for {e.health.remaining_s():.0f}s more after: {e.health.reason[:100]}"
        for e in capable
    )
    return ModelUnavailable(
        f"{where}: every text endpoint that can serve it is cooling down after failures "
        f"({details}); try again in {max(resume_in, 1):.0f}s",
        retry_after_s=resume_in,
    )
