"""Settings: every `INSPILOT_*` variable, decoded and checked once at start-up.

Values come from the environment, or from a TOML file named by `INSPILOT_CONFIG_FILE`
(keys are the variable names without the prefix, in lower case); the environment
wins. A wrong value stops start-up with a message naming the variable.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from domain.errors import InvalidInput
from domain.experiment import check_username
from entrypoints.text_endpoints import TextEndpointEntry, parse_text_endpoints, with_keys

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


def _non_negative_int(raw: str) -> int:
    value = _number(raw, int, "must be a whole number of at least 0")
    if value < 0:
        raise ValueError("must be a whole number of at least 0")
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


def _participants(raw: str) -> tuple[str, ...]:
    """Comma-separated usernames, or `@path` to a file with one per line (# starts a comment)."""
    raw = raw.strip()
    if not raw.startswith("@"):
        return _list(raw)
    path = Path(raw[1:]).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read the roster file {path}: {exc.strerror or exc}") from None
    names = (line.split("#", 1)[0].strip() for line in lines)
    return tuple(name for name in names if name)


def _roster(raw: str) -> tuple[str, ...]:
    names = _participants(raw)
    for name in names:
        try:
            # A roster file's line may name the condition too: `username,condition`.
            check_username(name.partition(",")[0])
        except InvalidInput as exc:
            raise ValueError(f"entry {name!r}: {exc.rule}") from None
    return names


def _networks(raw: str) -> tuple[str, ...]:
    entries = _list(raw)
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"entry {entry!r} is not an IP address or network") from None
    return entries


def _log_level(raw: str) -> str:
    return _choice("debug", "info", "warning", "error")(raw).upper()


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    parse: Callable[[str], Any]
    doc: str
    secret: bool = False


def _setting(default: str, parse: Callable[[str], Any], doc: str, *, secret: bool = False) -> Any:
    """A settings field: the variable's default (as written in the environment), parser, doc.

    A secret one (a key, or a value holding keys) stays out of reprs and error messages.
    """
    metadata = {"default": default, "parse": parse, "doc": doc, "secret": secret}
    return field(metadata=metadata, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Every setting: its field name upper-cased behind `INSPILOT_` is the variable."""

    host: str = _setting(
        "127.0.0.1", _text, "Address `inspilot serve` listens on (`--host` overrides)."
    )
    port: int = _setting("8000", _port, "Port `inspilot serve` listens on (`--port` overrides).")
    log_level: str = _setting("info", _log_level, "debug, info, warning or error.")
    cors_origins: tuple[str, ...] = _setting(
        "http://localhost:3000,http://127.0.0.1:3000",
        _list,
        "Comma-separated front-end origins allowed by CORS.",
    )
    max_body_mb: int = _setting("64", _positive_int, "Largest request body accepted, in MB.")
    max_num: int = _setting("12", _positive_int, "Largest `num` accepted by /generate.")
    max_image_mb: int = _setting(
        "8", _positive_int, "Largest decoded sketch image accepted, in MB."
    )
    prompts_dir: str = _setting(
        str(REPO_ROOT / "prompts"), _text, "Directory of the prompt templates."
    )
    prompts_watch: bool = _setting(
        "true",
        _flag,
        "Watch the prompt sets while serving: a valid edit serves the next generation, a "
        "broken one is refused (docs/prompts.md).",
    )
    prompts_debounce_ms: int = _setting(
        "400",
        _positive_int,
        "Longest wait gathering one burst of prompt file changes into one reload.",
    )
    list_attempts: int = _setting(
        "3",
        _positive_int,
        "How often a step is asked when its list cannot be reconciled with the count asked.",
    )
    research_token: str = _setting(
        "",
        _text,
        "Bearer token of the researchers' read-only API under /api/v1 (empty: the API is off).",
        secret=True,
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
    storage_backend: str = _setting(
        "embedded",
        _choice("embedded", "mongodb", "memory"),
        "embedded (SecantusDB in a child process), mongodb, or memory (lost at exit).",
    )
    mongodb_uri: str = _setting("", _text, "MongoDB connection string for the mongodb backend.")
    mongodb_database: str = _setting("inspilot", _text, "Database name.")
    mongodb_timeout_ms: int = _setting(
        "5000", _positive_int, "Connect and server-selection timeout."
    )
    data_dir: str = _setting("./.inspilot/data", _text, "Data directory of the embedded database.")
    embedded_cache_mb: int = _setting(
        "256", _positive_int, "WiredTiger cache of the embedded database's process, in MB."
    )
    record_queue_max: int = _setting(
        "256",
        _positive_int,
        "Generation records waiting to be written; when full, new generations wait.",
    )
    shutdown_grace_s: float = _setting(
        "30", _non_negative_float, "On SIGTERM, longest wait for queued records to be written."
    )
    access_log: bool = _setting(
        "false", _flag, "Log one line per HTTP request, with its request id (inspilot.access)."
    )
    # -- operations and the study --
    log_format: str = _setting(
        "text",
        _choice("text", "json"),
        "text, or json: one JSON object per line for every line the service writes.",
    )
    participants: tuple[str, ...] = _setting(
        "",
        _roster,
        "The study's roster: comma-separated usernames, or @path to a file with one per line "
        '(`username,condition` with `assignment = "roster"` in the study file) '
        "(empty: any username).",
    )
    # -- participants and conditions (issue 13) --
    study_file: str = _setting(
        "",
        _text,
        "TOML file declaring the study's conditions and their assignment (empty: one "
        "condition, `default`, on the prompts directory). See docs/participants-and-conditions.md.",
    )
    secret_key: str = _setting(
        "",
        _text,
        "Key that signs the participant cookie (empty: one is generated once and kept in "
        "the data directory as `secret-key`, mode 0600).",
        secret=True,
    )
    attribute_by_address: bool = _setting(
        "false",
        _flag,
        "Attribute a generation to the only participant whose start or save came from the "
        "same client address within the window (a lab with one computer per participant).",
    )
    attribution_window_s: float = _setting(
        "14400",
        _positive_float,
        "Seconds an address is remembered, and an unattributed generation is looked at again "
        "when a save arrives.",
    )
    trusted_proxies: tuple[str, ...] = _setting(
        "",
        _networks,
        "Comma-separated addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-For and X-Forwarded-Proto are believed.",
    )
    # Generation jobs (/api/v1/jobs and `inspilot generate`).
    job_ttl_s: float = _setting(
        "3600", _positive_float, "Seconds a finished job stays readable (result, events, images)."
    )
    jobs_per_user: int = _setting(
        "4", _positive_int, "Running jobs one username may have at once (more: 429)."
    )
    jobs_backend: str = _setting(
        "memory",
        _choice("memory", "mongodb"),
        "Where jobs' state and events live: memory (one process) or mongodb (read, followed "
        "and cancelled on any worker or replica; docs/scaling.md).",
    )

    # -- holding up under hostile and careless clients (issue 14) --
    min_free_mb: int = _setting(
        "1024",
        _non_negative_int,
        "Free space the data directory must keep: below it /paint/save, /generate and new "
        "jobs answer 507 (code 3) and store nothing (0: off).",
    )
    max_connections: int = _setting(
        "16000",
        _positive_int,
        "Requests held open at once (slow bodies, event streams, generations); beyond it a "
        "503 at once. Capped below the open-file limit, which start-up raises to its hard limit.",
    )
    header_timeout_s: float = _setting(
        "15",
        _positive_float,
        "Longest wait for a request's headers, on a new connection and between requests on a "
        "kept-alive one (granian's header read timeout, also the keep-alive idle timeout).",
    )
    body_timeout_s: float = _setting(
        "30", _positive_float, "A request body that sends nothing for this long is cut (408)."
    )
    sse_per_job: int = _setting(
        "64", _positive_int, "Event streams (/api/v1/jobs/{id}/events) open on one job (more: 429)."
    )
    sse_max: int = _setting("8192", _positive_int, "Event streams open in all (more: 429).")
    max_inflight_mb: int = _setting(
        "512",
        _positive_int,
        "Request bodies in flight at once, in MB (declared sizes); a body that would pass it "
        "waits 2 s for room, then gets 503 with Retry-After.",
    )
    max_task_chars: int = _setting(
        "10000",
        _positive_int,
        "Longest `designTask` /paint/save accepts, in characters (longer: 400 naming the field).",
    )
    dashboard_session_h: float = _setting(
        "12", _positive_float, "Hours a dashboard login lasts (logout ends it at once)."
    )
    storage_unanswered_s: float = _setting(
        "10",
        _positive_float,
        "Seconds the embedded database may fail its write-and-read health check before "
        "it is killed and restarted.",
    )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        file_values = _file_values(env.get(f"{PREFIX}CONFIG_FILE", ""))
        values: dict[str, Any] = {}
        for setting in settings_table():
            variable = PREFIX + setting.name
            raw = env.get(variable, file_values.get(variable, setting.default))
            try:
                values[setting.name.lower()] = setting.parse(raw)
            except ValueError as exc:
                shown = "" if setting.secret else f"={raw!r}"
                raise SettingsError(f"{variable}{shown}: {exc}") from None
        if values["text_backend"] == "endpoints":
            try:
                values["text_endpoints"] = with_keys(values["text_endpoints"], env)
            except ValueError as exc:
                raise SettingsError(f"{PREFIX}TEXT_ENDPOINTS: {exc}") from None
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
            (self.text_backend == "endpoints", "TEXT_ENDPOINTS", ",".join(self._endpoint_names())),
            (self.images_backend == "sd", "SD_INSTANCES", ",".join(self.sd_instances)),
            (self.storage_backend == "mongodb", "MONGODB_URI", self.mongodb_uri),
        ]
        for applies, name, value in needed:
            if applies and not value:
                raise SettingsError(f"{PREFIX}{name} must be set for the chosen backend")
        for name, value in (("SD_LEDGER", self.sd_ledger), ("JOBS_BACKEND", self.jobs_backend)):
            if value == "mongodb" and self.storage_backend == "memory":
                raise SettingsError(
                    f"{PREFIX}{name}=mongodb needs {PREFIX}STORAGE_BACKEND embedded or mongodb"
                )

    def _endpoint_names(self) -> list[str]:
        return [entry.name for entry in self.text_endpoints]



def _file_values(path: str) -> dict[str, str]:
    if not path:
        return {}
    try:
        table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{PREFIX}CONFIG_FILE={path!r}: cannot be read ({exc})") from None
    values: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict) or (
            isinstance(value, list) and any(isinstance(item, dict) for item in value)
        ):
            # Tables ([[text_endpoints]]) reach their parser as the JSON the variable holds.
            value = json.dumps(value, default=str)
        elif isinstance(value, list):
            value = ",".join(str(item) for item in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        values[PREFIX + key.upper()] = str(value)
    return values


def settings_table() -> tuple[Setting, ...]:
    """The variables in declaration order, for loading and for the README's table."""
    return tuple(
        Setting(
            item.name.upper(),
            item.metadata["default"],
            item.metadata["parse"],
            item.metadata["doc"],
            item.metadata["secret"],
        )
        for item in fields(Settings)
    )


SETTINGS: tuple[Setting, ...] = settings_table()
