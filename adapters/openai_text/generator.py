"""The text and vision model behind TextGenerator: one or several Azure OpenAI or OpenAI servers."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypedDict, Unpack

from openai.types.chat import ChatCompletion

from adapters.openai_text.endpoint import EndpointStats, TextEndpoint
from adapters.openai_text.health import COOLDOWN_BASE_S, COOLDOWN_MAX_S
from adapters.openai_text.messages import build_messages, choice_schema
from adapters.openai_text.router import Router, Sleep
from adapters.openai_text.step import StepCall
from adapters.vision_images import DEFAULT_MAX_SIDE, FittedImage, fit_for_vision
from application.ports import TextAnswer, TextGenerator, TextRequest

log = logging.getLogger("inspilot.text")

DEFAULT_STEP_DEADLINE_S = 60.0
_PROBE_TIMEOUT_S = 15.0


class GeneratorPolicy(TypedDict, total=False):
    """The generator's own knobs (every endpoint's)."""

    step_deadline_s: float
    backoff_base_s: float
    backoff_max_s: float
    temperature: float | None
    structured_choices: bool
    vision_max_side: int
    cooldown_base_s: float
    cooldown_max_s: float


class Policy(GeneratorPolicy, total=False):
    """The knobs shared by every way of building the generator."""

    concurrency: int  # the one endpoint's max_concurrency (for_azure, for_openai)
    label: str  # the one endpoint's name (for_azure, for_openai)


class ChatCompletionsTextGenerator(TextGenerator):
    """Chat completions over one or several endpoints, with one retry policy of our own.

    The SDK's retries are off (max_retries=0): they would neither respect the step's
    deadline nor let us say honestly why a step failed. Each step gets one deadline
    that covers queueing, every attempt and every wait between them; `StepCall` runs
    it and `Router` picks the endpoints and keeps their health. The `azure` and
    `openai` backends are this with one endpoint, so they cool down and fail fast too.
    """

    def __init__(
        self,
        endpoints: Sequence[TextEndpoint],
        *,
        step_deadline_s: float = DEFAULT_STEP_DEADLINE_S,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        temperature: float | None = None,
        structured_choices: bool = False,
        vision_max_side: int = DEFAULT_MAX_SIDE,
        cooldown_base_s: float = COOLDOWN_BASE_S,
        cooldown_max_s: float = COOLDOWN_MAX_S,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._vision_max_side = vision_max_side
        if step_deadline_s <= 0 or backoff_base_s < 0 or backoff_max_s < 0:
            raise ValueError("step_deadline_s > 0 and backoffs >= 0 are required")
        self._router = Router(
            endpoints,
            self._probe,
            cooldown_base_s=cooldown_base_s,
            cooldown_max_s=cooldown_max_s,
            rng=rng,
            clock=clock,
            sleep=sleep,
        )
        self._step_deadline_s = step_deadline_s
        self._backoff = (backoff_base_s, backoff_max_s)
        self._temperature = temperature
        self._structured_choices = structured_choices
        self._started = False

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
        label: str = "azure",
        concurrency: int = 10,
        **policy: Unpack[GeneratorPolicy],
    ) -> ChatCompletionsTextGenerator:
        """One Azure OpenAI resource; vision steps use the chat deployment unless told."""
        one = TextEndpoint.azure(
            label,
            endpoint=endpoint,
            api_version=api_version,
            deployment=deployment,
            vision_deployment=vision_deployment or deployment,
            api_key=api_key,
            use_entra_id=use_entra_id,
            max_concurrency=concurrency,
        )
        return cls([one], **policy)

    @classmethod
    def for_openai(
        cls,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str,
        vision_model: str | None = None,
        label: str = "openai",
        concurrency: int = 10,
        **policy: Unpack[GeneratorPolicy],
    ) -> ChatCompletionsTextGenerator:
        """OpenAI itself or one compatible server (vLLM, Ollama, LM Studio) at `base_url`."""
        one = TextEndpoint.openai(
            label,
            base_url=base_url,
            api_key=api_key,
            model=model,
            # Most chat models today also see images.
            vision_model=vision_model or model,
            max_concurrency=concurrency,
        )
        return cls([one], **policy)

    @property
    def endpoints(self) -> tuple[TextEndpoint, ...]:
        return self._router.endpoints

    def endpoint_stats(self) -> list[EndpointStats]:
        """One row per endpoint, in configuration order: calls by outcome, cooldowns, health
        (read by /metrics; plain values, safe to read from another thread)."""
        return [endpoint.stats() for endpoint in self.endpoints]

    async def start(self) -> None:
        """Create the clients and the router's asyncio state here, on the loop that uses them."""
        if self._started:
            return
        for endpoint in self.endpoints:
            endpoint.start()
        self._router.start()
        self._started = True
        log.info(
            "text endpoints: %s",
            ", ".join(
                f"{e.name} ({e.kind} {e.model}, vision {e.vision_model or 'none'}, "
                f"weight {e.weight:g}, {e.max_concurrency} at once)"
                for e in self.endpoints
            ),
        )

    async def close(self) -> None:
        self._started = False
        await self._router.close()
        for endpoint in self.endpoints:
            await endpoint.close()

    async def complete(self, request: TextRequest) -> TextAnswer:
        if not self._started:
            raise RuntimeError("the text generator was used before start()")
        fitted: list[FittedImage] = []
        if request.images:
            # Decoding and resampling megabytes of PNG would stall the event loop.
            # Pillow releases the GIL while it resamples and encodes: one thread each.
            fitted = list(
                await asyncio.gather(
                    *(
                        asyncio.to_thread(fit_for_vision, uri, self._vision_max_side)
                        for uri in request.images
                    )
                )
            )
            request = replace(request, images=tuple(image.uri for image in fitted))
        create: dict[str, Any] = {"messages": build_messages(request)}
        constrained = self._structured_choices and bool(request.options)
        if constrained:
            create["response_format"] = choice_schema(request.options)
        if self._temperature is not None:
            create["temperature"] = self._temperature
        call = StepCall(
            self._router,
            request,
            create,
            deadline_s=self._step_deadline_s,
            backoff=self._backoff,
            constrained=constrained,
        )
        answer = await call.run()
        return replace(answer, image_sizes=tuple(image.note for image in fitted))

    async def _probe(self, endpoint: TextEndpoint) -> ChatCompletion:
        """The smallest real call: any completion at all means the endpoint serves again."""
        return await endpoint.client.chat.completions.create(
            model=endpoint.model,
            messages=[{"role": "user", "content": "ping"}],
            max_tokens=1,
            timeout=min(self._step_deadline_s, _PROBE_TIMEOUT_S),
        )
