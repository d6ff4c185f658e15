"""The OpenAI / Azure OpenAI text and vision adapter (TextGenerator), with its own retry policy."""

from adapters.openai_text.factories import PLACEHOLDER_API_KEY
from adapters.openai_text.generator import AzureOpenAITextGenerator, Policy

__all__ = ["PLACEHOLDER_API_KEY", "AzureOpenAITextGenerator", "Policy"]
