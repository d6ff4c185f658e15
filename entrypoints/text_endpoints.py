"""INSPILOT_TEXT_ENDPOINTS: several text endpoints, each entry checked; a wrong one is named."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

_COMMON = ("name", "kind", "api_key", "api_key_env", "weight", "max_concurrency")
_KEYS = {
    "azure": {
        *_COMMON,
        "endpoint",
        "deployment",
        "vision_deployment",
        "api_version",
        "use_entra_id",
    },
    "openai": {*_COMMON, "base_url", "model", "vision_model"},
}
# What a key of the other kind is called here, for a helpful message.
_COUNTERPART = {
    "base_url": "endpoint",
    "model": "deployment",
    "vision_model": "vision_deployment",
    "endpoint": "base_url",
    "deployment": "model",
    "vision_deployment": "vision_model",
}


@dataclass(frozen=True)
class TextEndpointEntry:
    """One checked entry; the key stays out of reprs, logs and error messages."""

    name: str
    kind: str  # "azure" or "openai"
    url: str  # the Azure resource endpoint, or the OpenAI-compatible base URL ("" = OpenAI)
    model: str  # the deployment (azure) or model (openai)
    vision_model: str | None  # None: this endpoint never gets a step with images
    weight: float = 1.0
    max_concurrency: int | None = None  # None: INSPILOT_TEXT_CONCURRENCY
    api_version: str | None = None  # None: INSPILOT_AZURE_OPENAI_API_VERSION
    use_entra_id: bool = False
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)


class _EntryError(ValueError):
    def __init__(self, label: str, key: str, rule: str) -> None:
        super().__init__(f"entry {label}: key '{key}' {rule}")


def parse_text_endpoints(raw: str) -> tuple[TextEndpointEntry, ...]:
    """The JSON array of entries (empty text: none). Messages never quote a value."""
    if not raw.strip():
        return ()
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ValueError(f"is not valid JSON ({exc.msg} at {where})") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError("must be a JSON array of endpoint objects, with at least one")
    parsed: list[TextEndpointEntry] = []
    positions: dict[str, int] = {}
    for position, entry in enumerate(entries, start=1):
        parsed.append(_entry(entry, position, positions))
        positions[parsed[-1].name] = position
    if not any(entry.vision_model for entry in parsed):
        raise ValueError(
            "no entry has a vision_deployment or vision_model; deep divergence and "
            "convergence send sketches, so at least one endpoint must see images"
        )
    return tuple(parsed)


def with_keys(
    entries: tuple[TextEndpointEntry, ...], environ: Mapping[str, str]
) -> tuple[TextEndpointEntry, ...]:
    """Read each `api_key_env` from the environment, naming the entry when it is not set."""
    resolved = []
    for entry in entries:
        if entry.api_key_env is not None:
            key = environ.get(entry.api_key_env, "").strip()
            if not key:
                raise _EntryError(
                    f"'{entry.name}'",
                    "api_key_env",
                    f"names {entry.api_key_env}, which is not set in the environment",
                )
            entry = replace(entry, api_key=key)
        resolved.append(entry)
    return tuple(resolved)


def _entry(entry: Any, position: int, names: dict[str, int]) -> TextEndpointEntry:
    if not isinstance(entry, dict):
        raise ValueError(f"entry {position}: must be an object with name, kind, ...")
    name = entry.get("name")
    label = f"'{name}'" if isinstance(name, str) and name.strip() else str(position)
    kind = entry.get("kind")
    if kind not in _KEYS:
        raise _EntryError(label, "kind", 'must be "azure" or "openai"')
    for key in entry:
        if key not in _KEYS[kind]:
            other = _COUNTERPART.get(key)
            hint = f" (a {kind} entry uses '{other}')" if other else ""
            raise _EntryError(label, key, f"is not a key of a {kind} entry{hint}")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise _EntryError(label, "name", "must be a short text (records and metrics show it)")
    if name in names:
        raise _EntryError(label, "name", f"is already the name of entry {names[name]}")
    azure = kind == "azure"
    url_key, model_key, vision_key = (
        ("endpoint", "deployment", "vision_deployment")
        if azure
        else ("base_url", "model", "vision_model")
    )
    url = _text(entry, url_key, label, required=azure)
    if url and not url.startswith(("http://", "https://")):
        raise _EntryError(label, url_key, "must start with http:// or https://")
    return TextEndpointEntry(
        name=name,
        kind=kind,
        url=url or "",
        model=_text(entry, model_key, label, required=True) or "",
        vision_model=_text(entry, vision_key, label),
        weight=_number(entry, "weight", label, 1.0),
        max_concurrency=_concurrency(entry, label),
        api_version=_text(entry, "api_version", label),
        use_entra_id=_flag(entry, "use_entra_id", label),
        api_key_env=_text(entry, "api_key_env", label),
        api_key=_key(entry, label, azure),
    )


def _text(entry: dict[str, Any], key: str, label: str, *, required: bool = False) -> str | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise _EntryError(label, key, "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _EntryError(label, key, "must be a non-empty text")
    return value.strip()


def _number(entry: dict[str, Any], key: str, label: str, default: float) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _EntryError(label, key, "must be a number above 0")
    return float(value)


def _concurrency(entry: dict[str, Any], label: str) -> int | None:
    value = entry.get("max_concurrency")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _EntryError(label, "max_concurrency", "must be a whole number of at least 1")
    return value


def _flag(entry: dict[str, Any], key: str, label: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise _EntryError(label, key, "must be true or false")
    return value


def _key(entry: dict[str, Any], label: str, azure: bool) -> str | None:
    given = [key for key in ("api_key", "api_key_env") if entry.get(key) is not None]
    if entry.get("use_entra_id") is True:
        given.append("use_entra_id")
    if len(given) > 1:
        raise _EntryError(label, given[1], f"conflicts with '{given[0]}': give one of them")
    if azure and not given:
        raise _EntryError(label, "api_key_env", "is required (or api_key, or use_entra_id = true)")
    value = entry.get("api_key")
    if value is not None and (not isinstance(value, str) or not value.strip()):
        # Not _text(): even a wrong key's type is all a message may say about it.
        raise _EntryError(label, "api_key", "must be a non-empty text")
    return value.strip() if isinstance(value, str) else None
