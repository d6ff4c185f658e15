"""What a failed chat-completion attempt means: retry or not, how long to wait, which error."""

from __future__ import annotations

import email.utils
import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import openai

from domain.errors import (
    ContentRejected,
    ModelAnswerInvalid,
    ModelError,
    ModelTimeout,
    ModelUnavailable,
)

FailureKind = Literal["timeout", "unavailable", "rejected", "config", "refused", "invalid"]

# The SDK retries these too: request timeout, conflict, rate limit, server errors.
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_CONFIG_STATUS = {
    401: "the API key or token was refused",
    403: "access was denied",
    404: "the deployment or model does not exist",
}
# Servers sometimes echo a (masked) key in error text; never pass one on.
_SECRET = re.compile(r"\b(sk-[\w*-]+|Bearer\s+\S+)", re.IGNORECASE)


class CredentialUnavailable(Exception):
    """The Entra ID credential produced no token; a configuration problem, not an outage."""


@dataclass(frozen=True)
class Failure:
    """One failed attempt, classified once so the retry loop and the messages agree."""

    kind: FailureKind
    reason: str
    retryable: bool
    retry_after_s: float | None = None
    # What the endpoint's call counters show: finer than `kind`, which drives the errors.
    outcome: str = "client_error"
    # The library's own words (exception class and text): for the log, never for the client,
    # whose message names the part and what went wrong, not addresses or driver dumps.
    detail: str = ""

    @property
    def logged(self) -> str:
        """The reason with the library's detail, for log lines."""
        return f"{self.reason} [{self.detail}]" if self.detail else self.reason

    @property
    def asks_to_wait(self) -> bool:
        """A 429 with Retry-After: the endpoint told us itself when to come back."""
        return self.outcome == "rate_limited" and self.retry_after_s is not None

    def to_error(self, where: str, attempts: int, elapsed_s: float) -> ModelError:
        tried = f"{attempts} attempt{'s' if attempts > 1 else ''} in {elapsed_s:.1f}s"
        message = f"{where}: {self.reason} ({tried})"
        match self.kind:
            case "timeout":
                return ModelTimeout(message)
            case "unavailable":
                return ModelUnavailable(message, retry_after_s=self.retry_after_s)
            case "config":
                return ModelUnavailable(f"{message}; this is a configuration problem")
            case "rejected":
                return ContentRejected(message)
            case "invalid":
                return ModelAnswerInvalid(message)
            case "refused":
                return ModelError(message)


def classify(exc: BaseException) -> Failure:
    """Sort an exception from one attempt into a Failure; unknown ones are not retried."""
    if isinstance(exc, TimeoutError | openai.APITimeoutError):
        return Failure("timeout", "no answer in time", retryable=True, outcome="timeout")
    if isinstance(exc, CredentialUnavailable):
        return Failure("config", f"no Entra ID token: {exc}", False, outcome="config_error")
    if isinstance(exc, openai.APIConnectionError):
        return Failure(
            "unavailable",
            "cannot connect",
            retryable=True,
            outcome="connection_error",
            detail=_cause(exc),
        )
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc)
    if isinstance(exc, openai.APIResponseValidationError):
        reason = "the reply did not have the chat-completion shape"
        return Failure("invalid", reason, retryable=False, outcome="invalid_answer")
    detail = scrub(f"{type(exc).__name__}: {exc}", limit=200)
    return Failure("refused", "the OpenAI library failed", retryable=False, detail=detail)


def _classify_status(exc: openai.APIStatusError) -> Failure:
    status = exc.status_code
    detail = _server_message(exc)
    if status == 400 and _is_content_filter(exc):
        reason = f"the content filter refused the prompt{_filtered(exc)}"
        return Failure("rejected", reason, retryable=False, outcome="content_filter")
    should_retry = exc.response.headers.get("x-should-retry")
    retryable = status in _RETRYABLE_STATUS or status >= 500
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    if retryable:
        what = "rate limited" if status == 429 else "the service failed"
        return Failure(
            "unavailable",
            f"{what} (HTTP {status}{detail})",
            True,
            retry_after_s=retry_after_s(exc.response.headers),
            outcome="rate_limited" if status == 429 else "server_error",
        )
    if status in _CONFIG_STATUS:
        # No server text for auth errors: it may quote part of the key.
        shown = detail if status == 404 else ""
        reason = f"{_CONFIG_STATUS[status]} (HTTP {status}{shown})"
        return Failure("config", reason, retryable=False, outcome="config_error")
    return Failure("refused", f"the service refused the request (HTTP {status}{detail})", False)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, then retry-after (seconds or date)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            parsed = email.utils.parsedate_tz(value) if name == "retry-after" else None
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - time.time()
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Full jitter (AWS's recipe): spreads the retries of many steps failing at once."""
    ceiling = min(max_s, base_s * 2 ** min(attempt - 1, 30))
    return random.uniform(0.0, ceiling)


def scrub(text: str, limit: int = 200) -> str:
    text = _SECRET.sub("[redacted]", text.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    return f": {scrub(str(message))}" if message else ""


def _is_content_filter(exc: openai.APIStatusError) -> bool:
    if exc.code == "content_filter":
        return True
    inner = exc.body.get("innererror") if isinstance(exc.body, dict) else None
    return isinstance(inner, dict) and inner.get("code") == "ResponsibleAIPolicyViolation"


def _filtered(exc: openai.APIStatusError) -> str:
    inner = exc.body.get("innererror") if isinstance(exc.body, dict) else None
    results = inner.get("content_filter_result") if isinstance(inner, dict) else None
    return filtered_categories(results)


def filtered_categories(results: Any) -> str:
    """`" (violence, hate)"` from Azure's content_filter_result(s), or "" when unknown."""
    if not isinstance(results, dict):
        return ""
    names = [
        name
        for name, verdict in results.items()
        if isinstance(verdict, dict) and verdict.get("filtered")
    ]
    return f" ({', '.join(names)})" if names else ""


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return scrub(f"{type(cause).__name__}: {cause}" if cause else str(exc), limit=120)
