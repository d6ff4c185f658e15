"""FilesystemPromptCatalog: the designers' templates, validated whole and swapped whole.

Layout under the prompts directory: `<app>/<pipeline>/<step>.txt` for text steps, and
for images `<app>/images/<kind>.positive.txt`, `<kind>.negative.txt` and one
`<app>/images/options.toml` with a `[defaults]` table and a table per kind.

The catalog serves an immutable `PromptSet`. `reload()` validates the directory exactly
as at start-up and replaces the set in one assignment, or keeps the last good set and
remembers why the edit was refused: a generation never sees half an edit.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
    """A template cannot serve: names the file (`path`) and the placeholder or option (`reason`)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _placeholders(path: Path, text: str) -> set[str]:
    template = Template(text)
    if not template.is_valid():
        raise TemplateError(
            path, "a '$' is not followed by a valid placeholder name (write $$ for '$')"
        )
    return set(template.get_identifiers())


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(path, "template file is missing") from None
    except UnicodeDecodeError as exc:
        raise TemplateError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


@dataclass(frozen=True)
class PromptSet:
    """One validated version of a prompt directory; never changes once built.

    A PromptCatalog by its shape (`pinned()` returns it as one): subclassing the
    Protocol would inherit its read-only `set_version` property over this field.
    """

    directory: Path
    texts: Mapping[str, Template]
    versions: Mapping[str, TemplateVersion]
    images: Mapping[str, ImageTemplate]
    set_version: str

    def render(self, step: str, variables: dict[str, str]) -> str:
        return self.texts[step].substitute(variables)

    def version(self, step: str) -> TemplateVersion:
        return self.versions[step]

    def image_template(self, kind: str) -> ImageTemplate:
        return self.images[kind]

    def pinned(self) -> PromptSet:
        return self


def load_prompt_set(
    directory: Path, text_steps: Iterable[StepSpec], image_kinds: Iterable[str], positive: StepSpec
) -> PromptSet:
    """Read and check every template under `directory`; TemplateError on the first fault."""
    if not directory.is_dir():
        raise TemplateError(directory, "prompts directory does not exist")
    texts: dict[str, Template] = {}
    versions: dict[str, TemplateVersion] = {}
    for spec in text_steps:
        texts[spec.key], versions[spec.key] = _load_text(directory, spec)
    images = {kind: _load_image(directory, kind, positive) for kind in image_kinds}
    # The set's version: every template's path and hash, so any edit anywhere changes it.
    parts = [f"{v.path}={v.digest}" for v in versions.values()]
    parts += [f"{v.path}={v.digest}" for image in images.values() if (v := image.version)]
    set_version = digest(*(part.encode("utf-8") for part in sorted(parts)))
    return PromptSet(directory, texts, versions, images, set_version)


def _load_text(directory: Path, spec: StepSpec) -> tuple[Template, TemplateVersion]:
    path = directory / f"{spec.key}.txt"
    text = _read(path)
    used = _placeholders(path, text)
    unknown = sorted(used - spec.allowed)
    if unknown:
        allowed = ", ".join(f"${name}" for name in sorted(spec.allowed))
        raise TemplateError(path, f"unknown placeholder ${unknown[0]} (allowed: {allowed})")
    missing = sorted(spec.required - used)
    if missing:
        raise TemplateError(path, f"missing placeholder ${missing[0]}")
    if not text.strip():
        raise TemplateError(path, "template is empty")
    version = TemplateVersion(f"{spec.key}.txt", digest(text.encode("utf-8")))
    return Template(text.strip()), version


def _load_image(directory: Path, kind: str, positive_spec: StepSpec) -> ImageTemplate:
    positive_path = directory / f"{kind}.positive.txt"
    negative_path = directory / f"{kind}.negative.txt"
    positive = _read(positive_path).strip()
    used = _placeholders(positive_path, positive)
    for name in sorted(used - positive_spec.allowed):
        raise TemplateError(positive_path, f"unknown placeholder ${name} (allowed: $prompt)")
    for name in sorted(positive_spec.required - used):
        raise TemplateError(positive_path, f"missing placeholder ${name}")
    negative = _read(negative_path).strip()
    options = _image_options(directory, kind)
    # One version for what shapes the request: both wrappers and the kind's options.
    content = (positive, negative, json.dumps(options, sort_keys=True, default=str))
    version = TemplateVersion(kind, digest(*(part.encode("utf-8") for part in content)))
    return ImageTemplate(positive, negative, options, version)


def _image_options(directory: Path, kind: str) -> dict[str, Any]:
    path = directory / Path(kind).parent / "options.toml"
    try:
        tables = tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(path, f"not valid TOML ({exc})") from None
    options = dict(IMAGE_OPTION_DEFAULTS)
    for table_name in ("defaults", Path(kind).name):
        table = tables.get(table_name, {})
        for key, value in table.items():
            if key not in IMAGE_OPTION_DEFAULTS and key != "extra":
                known = ", ".join(sorted(IMAGE_OPTION_DEFAULTS))
                raise TemplateError(
                    path, f"[{table_name}] unknown option '{key}' (known: {known}, extra)"
                )
            default = IMAGE_OPTION_DEFAULTS.get(key)
            if default is not None and not _same_kind(default, value):
                raise TemplateError(
                    path, f"[{table_name}] option '{key}' must be {type(default).__name__}"
                )
            options[key] = value
    return options


def _same_kind(default: object, value: object) -> bool:
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, type(default)) and not (
        isinstance(value, bool) != isinstance(default, bool)
    )


@dataclass(frozen=True)
class PromptReload:
    """What one reload did: `applied` (the set now serving is `set_version`), `changed`
    (the version moved), or refused with the faulty `file` (relative to the set's
    directory) and the `reason`."""

    applied: bool
    set_version: str
    changed: bool = False
    file: str | None = None
    reason: str | None = None

    @property
    def message(self) -> str | None:
        return None if self.applied else f"{self.file}: {self.reason}"


class FilesystemPromptCatalog(PromptCatalog):
    """The serving prompt set of one directory, replaced whole by `reload()`."""

    def __init__(
        self,
        directory: str | Path,
        text_steps: Iterable[StepSpec],
        image_kinds: Iterable[str],
        positive_spec: StepSpec,
    ) -> None:
        self._directory = Path(directory).resolve()
        self._text_steps = tuple(text_steps)
        self._image_kinds = tuple(image_kinds)
        self._positive_spec = positive_spec
        self._set = self._load()
        self._refused: PromptReload | None = None

    def _load(self) -> PromptSet:
        return load_prompt_set(
            self._directory, self._text_steps, self._image_kinds, self._positive_spec
        )

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def set_version(self) -> str:
        return self._set.set_version

    @property
    def refused(self) -> str | None:
        """The last refused edit ('file: reason'), None once a reload succeeds."""
        return self._refused.message if self._refused else None

    def reload(self) -> PromptReload:
        """Validate the directory as at start-up; swap on success, keep the old set if not."""
        try:
            loaded = self._load()
        except TemplateError as exc:
            file = self._within(exc.path)
            self._refused = PromptReload(False, self._set.set_version, file=file, reason=exc.reason)
            return self._refused
        changed = loaded.set_version != self._set.set_version
        # One assignment: a reader holds either the old set or the new one, never a mix.
        self._set = loaded
        self._refused = None
        return PromptReload(True, loaded.set_version, changed=changed)

    def _within(self, path: str) -> str:
        """A file named by its place in the set (as the record's `template` is)."""
        try:
            return Path(path).relative_to(self._directory).as_posix()
        except ValueError:
            return path

    def pinned(self) -> PromptSet:
        return self._set

    def render(self, step: str, variables: dict[str, str]) -> str:
        return self._set.render(step, variables)

    def version(self, step: str) -> TemplateVersion:
        return self._set.version(step)

    def image_template(self, kind: str) -> ImageTemplate:
        return self._set.image_template(kind)
