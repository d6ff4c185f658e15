"""What the fake OpenAI server answers: scripted faults and replies in the real wire shapes."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Messages = list[dict[str, Any]]
Responder = Callable[[Messages], str]

_COUNT = re.compile(r"(\d+)\s*(?:个|款|种|条|项|组|items?\b)")


def counting_responder(messages: Messages) -> str:
    """`N` items joined by `#`, N read from the prompt ("6个", "6 items"), else 3.

    Requests carry no structured count, so the default reads the prompt the way a
    model would; tests that need a precise answer set their own responder.
    """
    match = _COUNT.search(user_text(messages))
    count = min(max(int(match.group(1)), 1), 50) if match else 3
    return "#".join(f"项目{i}" for i in range(1, count + 1))


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The `{"error": {...}}` envelope both OpenAI and Azure use for failures."""
    return {"error": {"code": code, "message": message, "type": None, "param": None, **extra}}


@dataclass(frozen=True)
class Fault:
    """One scripted reply: an HTTP error, a filtered or empty answer, a hang, or fixed text."""

    kind: Literal["status", "content_filter_finish", "empty", "hang", "reply"]
    status: int = 200
    body: dict[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    content: str | None = None

    @classmethod
    def error(
        cls, status: int, code: str, message: str, *, headers: tuple[tuple[str, str], ...] = ()
    ) -> Fault:
        return cls("status", status=status, body=error_body(code, message), headers=headers)

    @classmethod
    def rate_limited(cls, retry_after_s: float = 1.0, *, millis: bool = False) -> Fault:
        """A 429 asking to wait, in seconds (`retry-after`) or milliseconds (`retry-after-ms`)."""
        if millis:
            header = ("retry-after-ms", str(int(retry_after_s * 1000)))
        else:
            header = ("retry-after", f"{retry_after_s:g}")
        message = "Rate limit is exceeded. Try again later."
        return cls.error(429, "429", message, headers=(header,))

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls.error(status, "server_error", "The server had an error processing the request.")

    @classmethod
    def content_filter_400(cls) -> Fault:
        """Azure's refusal of a prompt, in the shape its content filter really sends."""
        verdicts = {
            "hate": {"filtered": False, "severity": "safe"},
            "violence": {"filtered": True, "severity": "high"},
        }
        inner = {"code": "ResponsibleAIPolicyViolation", "content_filter_result": verdicts}
        message = (
            "The response was filtered due to the prompt triggering Azure OpenAI's content "
            "management policy."
        )
        body = error_body("content_filter", message, innererror=inner)
        return cls("status", status=400, body=body)

    @classmethod
    def content_filter_finish(cls) -> Fault:
        """A 200 whose choice was withheld by the filter (finish_reason "content_filter")."""
        return cls("content_filter_finish")

    @classmethod
    def empty_content(cls) -> Fault:
        return cls("empty")

    @classmethod
    def hang(cls) -> Fault:
        """Never answer, until the client gives up or the server stops."""
        return cls("hang")

    @classmethod
    def reply(cls, content: str) -> Fault:
        return cls("reply", content=content)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it, for tests to assert on."""

    flavor: Literal["openai", "azure"]
    path: str
    deployment: str | None
    api_version: str | None
    model: str | None
    authorized: bool
    credential: str  # the api-key header, else the bearer token: tests check which was sent
    messages: Messages
    image_urls: tuple[str, ...]
    body: dict[str, Any] = field(repr=False)

    @property
    def has_images(self) -> bool:
        return bool(self.image_urls)

    @property
    def max_tokens(self) -> int | None:
        """1 marks the adapter's health probes, which tests tell apart from real steps."""
        value = self.body.get("max_tokens")
        return value if isinstance(value, int) else None


def completion(model: str, content: str | None, finish_reason: str) -> dict[str, Any]:
    """A `chat.completion` object as the real APIs send it."""
    completion_tokens = len(content or "")
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": finish_reason,
        "logprobs": None,
    }
    if finish_reason == "content_filter":
        choice["content_filter_results"] = {"violence": {"filtered": True, "severity": "medium"}}
    return {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": completion_tokens,
            "total_tokens": 10 + completion_tokens,
        },
    }


def user_text(messages: Messages) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            parts = content or []
            return " ".join(p.get("text", "") for p in parts if p.get("type") == "text")
    return ""


def image_urls(messages: Messages) -> tuple[str, ...]:
    return tuple(
        part["image_url"]["url"]
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    )
