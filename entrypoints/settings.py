"""Settings: every `INSPILOT_*` variable, decoded and checked once at start-up.

Values come from the environment, or from a TOML file named by `INSPILOT_CONFIG_FILE`
(keys are the variable names without the prefix, in lower case); the environment
wins. A wrong value stops start-up with a message naming the variable.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

PREFIX = "INSPILOT_"
REPO_ROOT = Path(__file__).resolve().parents[1]


class SettingsError(Exception):
    """A configuration value is wrong; the message names the variable and the rule."""


def _text(raw: str) -> str:
    return raw.strip()


def _number(raw: str, kind: type[int] | type[float], rule: str) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(rule) from None


def _positive_int(raw: str) -> int:
    value = _number(raw, int, "must be a whole number of at least 1")
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def _port(raw: str) -> int:
    value = _number(raw, int, "must be a TCP port number (1-65535)")
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port number (1-65535)")
    return value


def _non_negative_float(raw: str) -> float:
    value = _number(raw, float, "must be a number of at least 0")
    if value < 0:
        raise ValueError("must be a number of at least 0")
    return value


def _positive_float(raw: str) -> float:
    value = _number(raw, float, "must be a number above 0")
    if value <= 0:
        raise ValueError("must be a number above 0")
    return value


def _flag(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def _list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def _log_level(raw: str) -> str:
    return _choice("debug", "info", "warning", "error")(raw).upper()


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    parse: Callable[[str], Any]
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "HOST", "127.0.0.1", _text, "Address `inspilot serve` listens on (`--host` overrides)."
    ),
    Setting("PORT", "8000", _port, "Port `inspilot serve` listens on (`--port` overrides)."),
    Setting("LOG_LEVEL", "info", _log_level, "debug, info, warning or error."),
    Setting(
        "CORS_ORIGINS",
        "http://localhost:3000,http://127.0.0.1:3000",
        _list,
        "Comma-separated front-end origins allowed by CORS.",
    ),
    Setting("MAX_BODY_MB", "64", _positive_int, "Largest request body accepted, in MB."),
    Setting("MAX_NUM", "12", _positive_int, "Largest `num` accepted by /generate."),
    Setting("MAX_IMAGE_MB", "8", _positive_int, "Largest decoded sketch image accepted, in MB."),
    Setting("PROMPTS_DIR", str(REPO_ROOT / "prompts"), _text, "Directory of the prompt templates."),
    Setting(
        "LIST_ATTEMPTS",
        "3",
        _positive_int,
        "How often a step is asked when its list cannot be reconciled with the count asked.",
    ),
    Setting("TEXT_BACKEND", "demo", _choice("demo", "azure", "openai"), "demo, azure or openai."),
    Setting(
        "DEMO_TEXT_LATENCY_S", "0", _non_negative_float, "Simulated latency of the demo text model."
    ),
    Setting(
        "TEXT_CONCURRENCY", "10", _positive_int, "Concurrent requests to the text model service."
    ),
    Setting(
        "TEXT_DEADLINE_S", "60", _positive_float, "Deadline of one text step, all retries included."
    ),
    Setting(
        "AZURE_OPENAI_ENDPOINT",
        "",
        _text,
        "Azure OpenAI resource endpoint, https://NAME.openai.azure.com.",
    ),
    Setting("AZURE_OPENAI_API_KEY", "", _text, "Azure OpenAI API key (or use Entra ID)."),
    Setting("AZURE_OPENAI_API_VERSION", "2024-10-21", _text, "Azure OpenAI API version."),
    Setting("AZURE_OPENAI_DEPLOYMENT", "", _text, "Chat deployment name."),
    Setting(
        "AZURE_OPENAI_VISION_DEPLOYMENT",
        "",
        _text,
        "Deployment for vision steps (default: the chat deployment).",
    ),
    Setting(
        "AZURE_OPENAI_USE_ENTRA_ID",
        "false",
        _flag,
        "Authenticate with Entra ID (DefaultAzureCredential) instead of a key.",
    ),
    Setting("OPENAI_BASE_URL", "", _text, "OpenAI-compatible base URL (empty: OpenAI itself)."),
    Setting("OPENAI_API_KEY", "", _text, "API key of the OpenAI-compatible endpoint."),
    Setting("OPENAI_MODEL", "", _text, "Chat model name."),
    Setting("OPENAI_VISION_MODEL", "", _text, "Model for vision steps (default: the chat model)."),
    Setting("IMAGES_BACKEND", "demo", _choice("demo", "sd"), "demo or sd."),
    Setting(
        "DEMO_IMAGE_LATENCY_S",
        "0",
        _non_negative_float,
        "Simulated latency of the demo image model.",
    ),
    Setting(
        "SD_INSTANCES",
        "",
        _list,
        "Comma-separated AUTOMATIC1111 base URLs; basic auth as http://user:pass@host:port.",
    ),
    Setting("SD_SLOTS_PER_INSTANCE", "1", _positive_int, "Images one instance renders at once."),
    Setting("SD_QUEUE_MAX", "256", _positive_int, "Jobs that may wait for a free instance."),
    Setting("SD_QUEUE_WAIT_S", "300", _positive_float, "Longest wait for a free instance."),
    Setting("SD_TIMEOUT_S", "180", _positive_float, "Timeout of one image on one instance."),
    Setting("SD_HEALTH_INTERVAL_S", "15", _positive_float, "Seconds between health probes."),
    Setting(
        "STORAGE_BACKEND",
        "embedded",
        _choice("embedded", "mongodb", "memory"),
        "embedded (in-process SecantusDB), mongodb, or memory (lost at exit).",
    ),
    Setting("MONGODB_URI", "", _text, "MongoDB connection string for the mongodb backend."),
    Setting("MONGODB_DATABASE", "inspilot", _text, "Database name."),
    Setting("MONGODB_TIMEOUT_MS", "5000", _positive_int, "Connect and server-selection timeout."),
    Setting("DATA_DIR", "./.inspilot/data", _text, "Data directory of the embedded database."),
)


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    log_level: str
    cors_origins: tuple[str, ...]
    max_body_mb: int
    max_num: int
    max_image_mb: int
    prompts_dir: str
    list_attempts: int
    text_backend: str
    demo_text_latency_s: float
    text_concurrency: int
    text_deadline_s: float
    azure_openai_endpoint: str
    azure_openai_api_key: str
    azure_openai_api_version: str
    azure_openai_deployment: str
    azure_openai_vision_deployment: str
    azure_openai_use_entra_id: bool
    openai_base_url: str
    openai_api_key: str
    openai_model: str
    openai_vision_model: str
    images_backend: str
    demo_image_latency_s: float
    sd_instances: tuple[str, ...]
    sd_slots_per_instance: int
    sd_queue_max: int
    sd_queue_wait_s: float
    sd_timeout_s: float
    sd_health_interval_s: float
    storage_backend: str
    mongodb_uri: str
    mongodb_database: str
    mongodb_timeout_ms: int
    data_dir: str

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        file_values = _file_values(env.get(f"{PREFIX}CONFIG_FILE", ""))
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            variable = PREFIX + setting.name
            raw = env.get(variable, file_values.get(variable, setting.default))
            try:
                values[setting.name.lower()] = setting.parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{variable}={raw!r}: {exc}") from None
        settings = cls(**values)
        settings._check_backends()
        return settings

    def _check_backends(self) -> None:
        needed: list[tuple[bool, str, str]] = [
            (self.text_backend == "azure", "AZURE_OPENAI_ENDPOINT", self.azure_openai_endpoint),
            (self.text_backend == "azure", "AZURE_OPENAI_DEPLOYMENT", self.azure_openai_deployment),
            (
                self.text_backend == "azure" and not self.azure_openai_use_entra_id,
                "AZURE_OPENAI_API_KEY",
                self.azure_openai_api_key,
            ),
            (self.text_backend == "openai", "OPENAI_MODEL", self.openai_model),
            (self.images_backend == "sd", "SD_INSTANCES", ",".join(self.sd_instances)),
            (self.storage_backend == "mongodb", "MONGODB_URI", self.mongodb_uri),
        ]
        for applies, name, value in needed:
            if applies and not value:
                raise SettingsError(f"{PREFIX}{name} must be set for the chosen backend")

    def as_config(self) -> dict[str, Any]:
        """The dict handed to dependency-injector's Configuration provider."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


def _file_values(path: str) -> dict[str, str]:
    if not path:
        return {}
    try:
        table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{PREFIX}CONFIG_FILE={path!r}: cannot be read ({exc})") from None
    values: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, list):
            value = ",".join(str(item) for item in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        values[PREFIX + key.upper()] = str(value)
    return values
