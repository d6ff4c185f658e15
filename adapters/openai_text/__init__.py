"""The OpenAI / Azure OpenAI text and vision adapter (TextGenerator): failover and cooldown."""

from adapters.openai_text.endpoint import CALL_OUTCOMES, EndpointStats, TextEndpoint
from adapters.openai_text.factories import PLACEHOLDER_API_KEY
from adapters.openai_text.generator import ChatCompletionsTextGenerator, Policy

__all__ = [
    "CALL_OUTCOMES",
    "PLACEHOLDER_API_KEY",
    "ChatCompletionsTextGenerator",
    "EndpointStats",
    "Policy",
    "TextEndpoint",
]
