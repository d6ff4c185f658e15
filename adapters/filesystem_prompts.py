"""FilesystemPromptCatalog: the designers' templates, loaded and checked once at start-up.

Layout under the prompts directory: `<app>/<pipeline>/<step>.txt` for text steps, and
for images `<app>/images/<kind>.positive.txt`, `<kind>.negative.txt` and one
`<app>/images/options.toml` with a `[defaults]` table and a table per kind.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable
from pathlib import Path
from string import Template
from typing import Any

from application.ports import ImageTemplate, PromptCatalog, TemplateVersion
from application.steps import IMAGE_OPTION_DEFAULTS, StepSpec

# 16 hex digits (64 bits): short enough for a CSV column, far from colliding among edits.
DIGEST_LENGTH = 16


def digest(*parts: bytes) -> str:
    """A hash of the content; parts are length-prefixed so no two splits hash alike."""
    sha = hashlib.sha256()
    for part in parts:
        sha.update(len(part).to_bytes(8, "big"))
        sha.update(part)
    return sha.hexdigest()[:DIGEST_LENGTH]


class TemplateError(Exception):
    """A template cannot serve: the message names the file and the placeholder or option."""


def _placeholders(path: Path, text: str) -> set[str]:
    template = Template(text)
    if not template.is_valid():
        raise TemplateError(
            f"{path}: a '$' is not followed by a valid placeholder name (write $$ for '$')"
        )
    return set(template.get_identifiers())


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"{path}: template file is missing") from None


class FilesystemPromptCatalog(PromptCatalog):
    def __init__(
        self,
        directory: str | Path,
        text_steps: Iterable[StepSpec],
        image_kinds: Iterable[str],
        positive_spec: StepSpec,
    ) -> None:
        self._directory = Path(directory).resolve()
        if not self._directory.is_dir():
            raise TemplateError(f"{self._directory}: prompts directory does not exist")
        self._versions: dict[str, TemplateVersion] = {}
        self._texts = {spec.key: self._load_text(spec) for spec in text_steps}
        self._images = {kind: self._load_image(kind, positive_spec) for kind in image_kinds}

    @property
    def directory(self) -> Path:
        return self._directory

    def _load_text(self, spec: StepSpec) -> Template:
        path = self._directory / f"{spec.key}.txt"
        text = _read(path)
        used = _placeholders(path, text)
        unknown = sorted(used - spec.allowed)
        if unknown:
            allowed = ", ".join(f"${name}" for name in sorted(spec.allowed))
            raise TemplateError(f"{path}: unknown placeholder ${unknown[0]} (allowed: {allowed})")
        missing = sorted(spec.required - used)
        if missing:
            raise TemplateError(f"{path}: missing placeholder ${missing[0]}")
        if not text.strip():
            raise TemplateError(f"{path}: template is empty")
        self._versions[spec.key] = TemplateVersion(f"{spec.key}.txt", digest(text.encode("utf-8")))
        return Template(text.strip())

    def _load_image(self, kind: str, positive_spec: StepSpec) -> ImageTemplate:
        positive_path = self._directory / f"{kind}.positive.txt"
        negative_path = self._directory / f"{kind}.negative.txt"
        positive = _read(positive_path).strip()
        used = _placeholders(positive_path, positive)
        for name in sorted(used - positive_spec.allowed):
            raise TemplateError(f"{positive_path}: unknown placeholder ${name} (allowed: $prompt)")
        for name in sorted(positive_spec.required - used):
            raise TemplateError(f"{positive_path}: missing placeholder ${name}")
        negative = _read(negative_path).strip()
        options = self._image_options(kind)
        # One version for what shapes the request: both wrappers and the kind's options.
        content = (positive, negative, json.dumps(options, sort_keys=True, default=str))
        version = TemplateVersion(kind, digest(*(part.encode("utf-8") for part in content)))
        return ImageTemplate(positive, negative, options, version)

    def _image_options(self, kind: str) -> dict[str, Any]:
        path = self._directory / Path(kind).parent / "options.toml"
        try:
            tables = tomllib.loads(_read(path))
        except tomllib.TOMLDecodeError as exc:
            raise TemplateError(f"{path}: not valid TOML ({exc})") from None
        options = dict(IMAGE_OPTION_DEFAULTS)
        for table_name in ("defaults", Path(kind).name):
            table = tables.get(table_name, {})
            for key, value in table.items():
                if key not in IMAGE_OPTION_DEFAULTS and key != "extra":
                    known = ", ".join(sorted(IMAGE_OPTION_DEFAULTS))
                    raise TemplateError(
                        f"{path}: [{table_name}] unknown option '{key}' (known: {known}, extra)"
                    )
                default = IMAGE_OPTION_DEFAULTS.get(key)
                if default is not None and not _same_kind(default, value):
                    raise TemplateError(
                        f"{path}: [{table_name}] option '{key}' must be {type(default).__name__}"
                    )
                options[key] = value
        return options

    def render(self, step: str, variables: dict[str, str]) -> str:
        return self._texts[step].substitute(variables)

    def version(self, step: str) -> TemplateVersion:
        return self._versions[step]

    def image_template(self, kind: str) -> ImageTemplate:
        return self._images[kind]


def _same_kind(default: object, value: object) -> bool:
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, type(default)) and not (
        isinstance(value, bool) != isinstance(default, bool)
    )
