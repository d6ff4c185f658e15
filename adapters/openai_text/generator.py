"""The text and vision model behind TextGenerator: Azure OpenAI or any OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypedDict, Unpack

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from adapters.openai_text.factories import azure_client_factory, openai_client_factory
from adapters.openai_text.failures import (
    CredentialUnavailable,
    Failure,
    backoff_s,
    classify,
    filtered_categories,
)
from application.ports import TextAnswer, TextGenerator, TextRequest
from domain.errors import ContentRejected, ModelAnswerInvalid

log = logging.getLogger("inspilot.text")

DEFAULT_STEP_DEADLINE_S = 60.0

_SYSTEM = (
    "Answer with exactly what the user asks for, in the format the user asks for, "
    "with no preamble, no numbering and no explanation."
)


class Policy(TypedDict, total=False):
    """The knobs shared by every way of building the generator."""

    concurrency: int
    step_deadline_s: float
    backoff_base_s: float
    backoff_max_s: float
    temperature: float | None
    label: str
    structured_choices: bool


class AzureOpenAITextGenerator(TextGenerator):
    """Chat completions with one retry policy of our own, so every failure ends typed and on time.

    The SDK's retries are off (max_retries=0): they would neither respect the step's
    deadline nor let us say honestly why a step failed. One semaphore caps the calls in
    flight for the whole service (a step waiting to retry gives its slot up); each step
    gets one deadline that covers queueing, every attempt and every wait between them.
    """

    def __init__(
        self,
        client_factory: Callable[[], AsyncOpenAI],
        *,
        model: str,
        vision_model: str | None = None,
        concurrency: int = 10,
        step_deadline_s: float = DEFAULT_STEP_DEADLINE_S,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        temperature: float | None = None,
        label: str = "openai",
        structured_choices: bool = False,
    ) -> None:
        if concurrency < 1 or step_deadline_s <= 0 or backoff_base_s < 0 or backoff_max_s < 0:
            raise ValueError("concurrency >= 1, step_deadline_s > 0 and backoffs >= 0 are required")
        self._client_factory = client_factory
        self.model = model
        self.vision_model = vision_model or model  # most chat models today also see images
        self._concurrency = concurrency
        self._step_deadline_s = step_deadline_s
        self._backoff = (backoff_base_s, backoff_max_s)
        self._temperature = temperature
        self.label = label
        self._structured_choices = structured_choices
        self._client: AsyncOpenAI | None = None
        self._slots: asyncio.Semaphore | None = None

    @classmethod
    def for_azure(
        cls,
        *,
        endpoint: str,
        api_version: str,
        deployment: str,
        vision_deployment: str | None = None,
        api_key: str | None = None,
        use_entra_id: bool = False,
        **policy: Unpack[Policy],
    ) -> AzureOpenAITextGenerator:
        """Azure OpenAI: deployments are the model names, authenticated by key or Entra ID."""
        factory = azure_client_factory(
            endpoint=endpoint,
            api_version=api_version,
            api_key=api_key,
            use_entra_id=use_entra_id,
            timeout_s=policy.get("step_deadline_s", DEFAULT_STEP_DEADLINE_S),
        )
        policy.setdefault("label", "azure")
        return cls(factory, model=deployment, vision_model=vision_deployment, **policy)

    @classmethod
    def for_openai(
        cls,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str,
        vision_model: str | None = None,
        **policy: Unpack[Policy],
    ) -> AzureOpenAITextGenerator:
        """OpenAI itself or a compatible server (vLLM, Ollama, LM Studio) at `base_url`."""
        factory = openai_client_factory(
            base_url=base_url,
            api_key=api_key,
            timeout_s=policy.get("step_deadline_s", DEFAULT_STEP_DEADLINE_S),
        )
        return cls(factory, model=model, vision_model=vision_model, **policy)

    async def start(self) -> None:
        """Create the client and the semaphore here, on the loop that will use them."""
        if self._client is None:
            self._slots = asyncio.Semaphore(self._concurrency)
            self._client = self._client_factory()

    async def close(self) -> None:
        client, self._client, self._slots = self._client, None, None
        if client is not None:
            await client.close()
        aclose = getattr(self._client_factory, "aclose", None)
        if aclose is not None:
            await aclose()

    async def complete(self, request: TextRequest) -> TextAnswer:
        if self._client is None or self._slots is None:
            raise RuntimeError(f"{self.label} text generator used before start()")
        model = self.vision_model if request.images else self.model
        where = f"text step '{request.step}' on {self.label} model '{model}'"
        create: dict[str, Any] = {"model": model, "messages": build_messages(request)}
        constrained = self._structured_choices and bool(request.options)
        if constrained:
            create["response_format"] = choice_schema(request.options)
        completion = await self._create_with_retries(self._client, self._slots, where, **create)
        answer = read_answer(completion, model, where)
        return unwrap_choices(answer) if constrained else answer

    async def _create_with_retries(
        self, client: AsyncOpenAI, slots: asyncio.Semaphore, where: str, **create: Any
    ) -> ChatCompletion:
        if self._temperature is not None:
            create["temperature"] = self._temperature
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._step_deadline_s
        attempt = 0
        outage: Failure | None = None  # the latest failure that was not a timeout
        while True:
            attempt += 1
            sent = False
            try:
                async with asyncio.timeout_at(deadline):
                    async with slots:
                        sent = True
                        # The SDK's own timeout too, so a stalled socket is closed by httpx.
                        remaining = max(deadline - loop.time(), 0.001)
                        completion = await client.chat.completions.create(
                            **create, timeout=remaining
                        )
            except (TimeoutError, openai.OpenAIError, CredentialUnavailable) as exc:
                failure = classify(exc)
                delay = self._next_delay(failure, attempt)
                if delay is None or loop.time() + delay >= deadline:
                    if failure.kind == "timeout":
                        failure = self._timeout_failure(outage, queued=not sent)
                    elif delay is not None:
                        failure = self._no_time_left(failure)
                    log.warning("%s failed: %s", where, failure.reason)
                    raise failure.to_error(where, attempt, loop.time() - started) from exc
                if failure.kind != "timeout":
                    outage = failure
                log.warning(
                    "%s: %s; retry %d in %.2fs (%.1fs left)",
                    where,
                    failure.reason,
                    attempt,
                    delay,
                    deadline - loop.time(),
                )
                await asyncio.sleep(delay)
                continue
            if attempt > 1:
                log.info("%s answered after %d attempts", where, attempt)
            return completion

    def _timeout_failure(self, outage: Failure | None, *, queued: bool) -> Failure:
        """What to blame when the deadline ran out: an earlier outage, the queue, or the model."""
        ran_out = f"the step's deadline of {self._step_deadline_s:g}s ran out"
        if outage is not None:
            # The service was failing; the last attempt merely had too little time left.
            return Failure(
                "unavailable",
                f"{outage.reason}, then {ran_out}",
                retryable=False,
                retry_after_s=outage.retry_after_s,
            )
        if queued:
            # Saying so tells an operator to raise the concurrency, not to blame the model.
            reason = f"still waiting for one of {self._concurrency} request slots when {ran_out}"
            return Failure("timeout", reason, retryable=False)
        return Failure("timeout", f"no answer before {ran_out}", retryable=False)

    def _no_time_left(self, failure: Failure) -> Failure:
        if failure.retry_after_s is not None:
            why = f"the service asked to wait {failure.retry_after_s:g}s"
        else:
            why = "no time was left for another attempt"
        reason = f"{failure.reason}; {why} within the step's deadline of {self._step_deadline_s:g}s"
        return replace(failure, reason=reason)

    def _next_delay(self, failure: Failure, attempt: int) -> float | None:
        """None when the failure is final; else the wait, the server's Retry-After first."""
        if not failure.retryable:
            return None
        base_s, max_s = self._backoff
        if failure.retry_after_s is not None:
            # A little jitter on top: steps throttled together must not all return together.
            return failure.retry_after_s + backoff_s(1, base_s, base_s)
        return backoff_s(attempt, base_s, max_s)


def build_messages(request: TextRequest) -> list[ChatCompletionMessageParam]:
    """The prompt as the user's message, images as image_url parts for vision steps."""
    system = _SYSTEM
    if request.options:
        # The template lists the options already; repeating them in the system message
        # keeps the model from paraphrasing the names it must choose among.
        listed = "\n".join(f"- {option}" for option in request.options)
        system += f"\nChoose only among these, copying each exactly as written:\n{listed}"
    if not request.images:
        return [{"role": "system", "content": system}, {"role": "user", "content": request.prompt}]
    return [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": request.prompt},
                *({"type": "image_url", "image_url": {"url": uri}} for uri in request.images),
            ],
        },
    ]


def choice_schema(options: tuple[str, ...]) -> dict[str, Any]:
    """Structured output that can only name the offered options (OpenAI json_schema)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "choice",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "selected": {
                        "type": "array",
                        "items": {"type": "string", "enum": list(options)},
                    }
                },
                "required": ["selected"],
                "additionalProperties": False,
            },
        },
    }


def unwrap_choices(answer: TextAnswer) -> TextAnswer:
    """The structured answer as the `#` list the pipelines parse; plain text passes as is,
    since the parser matches names loosely anyway."""
    try:
        selected = json.loads(answer.text)["selected"]
    except (ValueError, TypeError, KeyError):
        return answer
    if not isinstance(selected, list) or not all(isinstance(item, str) for item in selected):
        return answer
    return replace(answer, text="#".join(selected))


def read_answer(completion: ChatCompletion, model: str, where: str) -> TextAnswer:
    """The stripped text; a filtered, refused or empty answer is an error, never ""."""
    if not completion.choices:
        raise ModelAnswerInvalid(f"{where}: the reply had no choices")
    choice = completion.choices[0]
    if choice.finish_reason == "content_filter":
        extra = choice.model_extra or {}
        categories = filtered_categories(extra.get("content_filter_results"))
        raise ContentRejected(f"{where}: the content filter withheld the answer{categories}")
    text = (choice.message.content or "").strip()
    if not text and choice.message.refusal:
        raise ContentRejected(f"{where}: the model refused: {choice.message.refusal[:200]}")
    if not text:
        raise ModelAnswerInvalid(
            f"{where}: the answer was empty (finish_reason {choice.finish_reason!r})"
        )
    if choice.finish_reason == "length":
        log.warning("%s: the answer was cut at the token limit", where)
    return TextAnswer(text=text, model=completion.model or model)
