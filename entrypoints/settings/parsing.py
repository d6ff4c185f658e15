"""How a setting is declared and parsed: the parsers, the declaration helper, the config file.

Values come from the environment, or from a TOML file named by `INSPILOT_CONFIG_FILE`
(keys are the variable names without the prefix, in lower case); the environment
wins. A wrong value stops start-up with a message naming the variable.
"""

from __future__ import annotations

import ipaddress
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.errors import InvalidInput
from domain.experiment import check_username

PREFIX = "INSPILOT_"
REPO_ROOT = Path(__file__).resolve().parents[2]


class SettingsError(Exception):
    """A configuration value is wrong; the message names the variable and the rule."""


def _text(raw: str) -> str:
    return raw.strip()


def _number(raw: str, kind: type[int] | type[float], rule: str) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(rule) from None


def _bounded(
    kind: type[int] | type[float], fits: Callable[[Any], bool], rule: str
) -> Callable[[str], Any]:
    """A number parser: `kind`, within the bound `fits` checks, else `rule` is the error."""

    def parse(raw: str) -> Any:
        value = _number(raw, kind, rule)
        if not fits(value):
            raise ValueError(rule)
        return value

    return parse


_positive_int = _bounded(int, lambda value: value >= 1, "must be a whole number of at least 1")
_non_negative_int = _bounded(int, lambda value: value >= 0, "must be a whole number of at least 0")
_port = _bounded(int, lambda value: 0 < value < 65536, "must be a TCP port number (1-65535)")
_non_negative_float = _bounded(float, lambda value: value >= 0, "must be a number of at least 0")
_positive_float = _bounded(float, lambda value: value > 0, "must be a number above 0")


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
