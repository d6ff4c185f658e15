"""Client factories: the SDK clients are built at start(), on the app's loop, never at import."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from openai import AsyncAzureOpenAI, AsyncOpenAI

from adapters.openai_text.failures import CredentialUnavailable, scrub

# The SDK insists on a key; local servers (Ollama, vLLM, LM Studio) ignore it.
PLACEHOLDER_API_KEY = "not-needed"
_COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"


def openai_client_factory(
    *, base_url: str | None, api_key: str | None, timeout_s: float
) -> Callable[[], AsyncOpenAI]:
    def build() -> AsyncOpenAI:
        # max_retries=0: the generator owns retries, within the step's deadline.
        return AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or PLACEHOLDER_API_KEY,
            max_retries=0,
            timeout=timeout_s,
        )

    return build


def azure_client_factory(
    *,
    endpoint: str,
    api_version: str,
    api_key: str | None,
    use_entra_id: bool,
    timeout_s: float,
) -> Callable[[], AsyncOpenAI]:
    """Key or Entra ID, never both: a silent fallback would hide which one is misconfigured."""
    if use_entra_id == (api_key is not None):
        raise ValueError("Azure OpenAI needs exactly one of api_key or use_entra_id=True")

    def build(token_provider: Callable[[], Awaitable[str]] | None = None) -> AsyncOpenAI:
        # No azure_deployment: the SDK then puts `model` in the path, so one client
        # serves both the text and the vision deployment.
        return AsyncAzureOpenAI(
            azure_endpoint=endpoint,
            api_version=api_version,
            api_key=api_key,
            azure_ad_token_provider=token_provider,
            max_retries=0,
            timeout=timeout_s,
        )

    if not use_entra_id:
        return build
    return EntraClientFactory(build)


class EntraClientFactory:
    """Builds the Azure client with a DefaultAzureCredential, and closes that credential."""

    def __init__(self, build: Callable[[Callable[[], Awaitable[str]]], AsyncOpenAI]) -> None:
        try:
            from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider
        except ImportError as exc:
            raise ImportError(
                "use_entra_id=True needs the azure-identity package: "
                "pip install 'inspilot-api[azure-identity]'"
            ) from exc
        self._credential_type: Any = DefaultAzureCredential
        self._provider_for: Any = get_bearer_token_provider
        self._build = build
        self._credential: Any = None

    def __call__(self) -> AsyncOpenAI:
        # Created here, not in __init__: the async credential binds to the running loop.
        self._credential = self._credential_type()
        provider = self._provider_for(self._credential, _COGNITIVE_SERVICES_SCOPE)

        async def token() -> str:
            try:
                return str(await provider())
            except Exception as exc:  # azure.identity raises several unrelated types
                raise CredentialUnavailable(scrub(f"{type(exc).__name__}: {exc}")) from exc

        return self._build(token)

    async def aclose(self) -> None:
        credential, self._credential = self._credential, None
        if credential is not None:
            await credential.close()
