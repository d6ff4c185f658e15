"""One chat-completions endpoint: where it is, which models it serves, its load and its record."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Literal, TypedDict

from openai import AsyncOpenAI

from adapters.openai_text.factories import azure_client_factory, openai_client_factory
from adapters.openai_text.health import Health

Kind = Literal["azure", "openai"]

# How fast the latency estimate follows the endpoint: recent calls count most.
_LATENCY_WEIGHT = 0.3
_CLIENT_TIMEOUT_S = 600.0  # every call passes its own, shorter timeout


class EndpointStats(TypedDict):
    """One endpoint's counters and state, as /metrics reads them: a mapping becomes
    `inspilot_text_<key>_total{endpoint,outcome}`, a number ending in `_total` a counter
    `inspilot_text_endpoint_<key>{endpoint}`, any other number a gauge of that name."""

    endpoint: str  # the entry's name
    calls: dict[str, int]  # chat calls by outcome (see CALL_OUTCOMES); probes not included
    probes: dict[str, int]  # "passed" / "failed"
    cooldowns_total: int  # times it was taken out of traffic
    healthy: bool  # takes traffic now
    state: str  # "healthy", "cooling" or "probing"
    cooldown_remaining_seconds: float
    in_flight: int
    max_concurrency: int
    weight: float


CALL_OUTCOMES = (
    "ok",
    "rate_limited",
    "server_error",
    "timeout",
    "connection_error",
    "content_filter",
    "invalid_answer",
    "config_error",
    "client_error",
)


class TextEndpoint:
    """An Azure OpenAI resource or an OpenAI-compatible server, and what we know of it.

    `vision_model` None means the endpoint never gets a step with images. The client
    is built at start(), on the loop that uses it. The router owns `health`.
    """

    def __init__(
        self,
        name: str,
        client_factory: Callable[[], AsyncOpenAI],
        *,
        model: str,
        vision_model: str | None = None,
        weight: float = 1.0,
        max_concurrency: int = 10,
        kind: Kind = "openai",
    ) -> None:
        if not name or not model or weight <= 0 or max_concurrency < 1:
            raise ValueError("a name, a model, weight > 0 and max_concurrency >= 1 are required")
        self.name = name
        self.kind = kind
        self.model = model
        self.vision_model = vision_model
        self.weight = weight
        self.max_concurrency = max_concurrency
        self.health = Health()
        self.in_flight = 0
        self.calls: Counter[str] = Counter()
        self.probes: Counter[str] = Counter()
        self._client_factory = client_factory
        self._client: AsyncOpenAI | None = None
        self._latency_s: dict[bool, float] = {}

    @classmethod
    def azure(
        cls,
        name: str,
        *,
        endpoint: str,
        api_version: str,
        deployment: str,
        vision_deployment: str | None = None,
        api_key: str | None = None,
        use_entra_id: bool = False,
        weight: float = 1.0,
        max_concurrency: int = 10,
    ) -> TextEndpoint:
        """An Azure OpenAI resource: deployments are the model names."""
        factory = azure_client_factory(
            endpoint=endpoint,
            api_version=api_version,
            api_key=api_key,
            use_entra_id=use_entra_id,
            timeout_s=_CLIENT_TIMEOUT_S,
        )
        return cls(
            name,
            factory,
            model=deployment,
            vision_model=vision_deployment,
            weight=weight,
            max_concurrency=max_concurrency,
            kind="azure",
        )

    @classmethod
    def openai(
        cls,
        name: str,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str,
        vision_model: str | None = None,
        weight: float = 1.0,
        max_concurrency: int = 10,
    ) -> TextEndpoint:
        """OpenAI itself (`base_url` None) or a compatible server (vLLM, Ollama, LM Studio)."""
        factory = openai_client_factory(
            base_url=base_url, api_key=api_key, timeout_s=_CLIENT_TIMEOUT_S
        )
        return cls(
            name,
            factory,
            model=model,
            vision_model=vision_model,
            weight=weight,
            max_concurrency=max_concurrency,
        )

    def __repr__(self) -> str:
        return f"TextEndpoint({self.name!r}, {self.kind}, model={self.model!r})"

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        if self._client is None:
            self._client = self._client_factory()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        aclose = getattr(self._client_factory, "aclose", None)
        if aclose is not None:
            await aclose()

    @property
    def client(self) -> AsyncOpenAI:
        if self._client is None:
            raise RuntimeError(f"text endpoint '{self.name}' used before start()")
        return self._client

    # -- routing ----------------------------------------------------------------------
    def serves(self, vision: bool) -> bool:
        return not vision or self.vision_model is not None

    def model_for(self, vision: bool) -> str:
        return (self.vision_model or self.model) if vision else self.model

    @property
    def has_room(self) -> bool:
        return self.in_flight < self.max_concurrency

    def answered_in(self, vision: bool, seconds: float) -> None:
        """Learn how long a successful call takes here (text and vision kept apart)."""
        known = self._latency_s.get(vision)
        self._latency_s[vision] = (
            seconds if known is None else known + _LATENCY_WEIGHT * (seconds - known)
        )

    def latency_s(self, vision: bool) -> float | None:
        return self._latency_s.get(vision)

    def stats(self) -> EndpointStats:
        return EndpointStats(
            endpoint=self.name,
            calls={outcome: self.calls[outcome] for outcome in CALL_OUTCOMES},
            probes={"passed": self.probes["passed"], "failed": self.probes["failed"]},
            cooldowns_total=self.health.cooldowns,
            healthy=self.health.healthy,
            state=self.health.state,
            cooldown_remaining_seconds=round(self.health.remaining_s(), 3),
            in_flight=self.in_flight,
            max_concurrency=self.max_concurrency,
            weight=self.weight,
        )
