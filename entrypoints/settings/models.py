"""Settings: the text model (one or several endpoints) and the image model (demo or an SD pool)."""

from __future__ import annotations

from dataclasses import dataclass

from entrypoints.settings.parsing import (
    _choice,
    _flag,
    _list,
    _non_negative_float,
    _positive_float,
    _positive_int,
    _setting,
    _text,
)
from entrypoints.text_endpoints import TextEndpointEntry, parse_text_endpoints


@dataclass(frozen=True)
class ModelSettings:
    """The text model (one or several endpoints) and the image model (demo or an SD pool)."""

    list_attempts: int = _setting(
        "3",
        _positive_int,
        "How often a step is asked when its list cannot be reconciled with the count asked.",
    )
    text_backend: str = _setting(
        "demo",
        _choice("demo", "azure", "openai", "endpoints"),
        "demo, azure, openai (one endpoint from the variables below) or endpoints "
        "(several, from `INSPILOT_TEXT_ENDPOINTS`).",
    )
    demo_text_latency_s: float = _setting(
        "0", _non_negative_float, "Simulated latency of the demo text model."
    )
    text_concurrency: int = _setting(
        "10",
        _positive_int,
        "Concurrent requests to the text model service (per endpoint: the default of each "
        "entry's `max_concurrency`).",
    )
    text_deadline_s: float = _setting(
        "60", _positive_float, "Deadline of one text step, all retries included."
    )
    text_structured_choices: bool = _setting(
        "false",
        _flag,
        "Constrain choice steps to the offered names with JSON-schema structured output "
        "(needs a model and endpoint that support it).",
    )
    vision_max_side: int = _setting(
        "1024",
        _positive_int,
        "Longest side, in pixels, a sketch is scaled down to before a vision step sends it "
        "(the size vision models look at; the record keeps the original).",
    )
    # Several text endpoints (api_key_env names are resolved in load()).
    text_endpoints: tuple[TextEndpointEntry, ...] = _setting(
        "",
        parse_text_endpoints,
        "For `INSPILOT_TEXT_BACKEND=endpoints`: a JSON array of endpoints, or "
        "`[[text_endpoints]]` tables in the config file (see below).",
        secret=True,
    )
    azure_openai_endpoint: str = _setting(
        "", _text, "Azure OpenAI resource endpoint, https://NAME.openai.azure.com."
    )
    azure_openai_api_key: str = _setting(
        "", _text, "Azure OpenAI API key (or use Entra ID).", secret=True
    )
    azure_openai_api_version: str = _setting("2024-10-21", _text, "Azure OpenAI API version.")
    azure_openai_deployment: str = _setting("", _text, "Chat deployment name.")
    azure_openai_vision_deployment: str = _setting(
        "", _text, "Deployment for vision steps (default: the chat deployment)."
    )
    azure_openai_use_entra_id: bool = _setting(
        "false", _flag, "Authenticate with Entra ID (DefaultAzureCredential) instead of a key."
    )
    openai_base_url: str = _setting("", _text, "OpenAI-compatible base URL (empty: OpenAI itself).")
    openai_api_key: str = _setting(
        "", _text, "API key of the OpenAI-compatible endpoint.", secret=True
    )
    openai_model: str = _setting("", _text, "Chat model name.")
    openai_vision_model: str = _setting(
        "", _text, "Model for vision steps (default: the chat model)."
    )
    images_backend: str = _setting("demo", _choice("demo", "sd"), "demo or sd.")
    demo_image_latency_s: float = _setting(
        "0", _non_negative_float, "Simulated latency of the demo image model."
    )
    sd_instances: tuple[str, ...] = _setting(
        "",
        _list,
        "Comma-separated AUTOMATIC1111 base URLs; basic auth as http://user:pass@host:port.",
    )
    sd_slots_per_instance: int = _setting(
        "1", _positive_int, "Images one instance renders at once."
    )
    sd_queue_max: int = _setting("256", _positive_int, "Jobs that may wait for a free instance.")
    sd_queue_wait_s: float = _setting("300", _positive_float, "Longest wait for a free instance.")
    sd_timeout_s: float = _setting("180", _positive_float, "Timeout of one image on one instance.")
    sd_health_interval_s: float = _setting("15", _positive_float, "Seconds between health probes.")
    sd_ledger: str = _setting(
        "memory",
        _choice("memory", "mongodb"),
        "Where the SD slots and queue live: memory (one process) or mongodb (shared by "
        "every worker and replica, in the storage's database; docs/scaling.md).",
    )
    sd_lease_s: float = _setting(
        "15",
        _positive_float,
        "Seconds a replica's hold on an SD slot lasts unless renewed (mongodb ledger).",
    )
