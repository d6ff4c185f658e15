"""The study file (`INSPILOT_STUDY_FILE`): conditions and their assignment, checked whole
at start-up, so a typo stops the service with a message naming the condition and key."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from adapters.filesystem_prompts import FilesystemPromptCatalog, TemplateError
from application.ports import PromptCatalog
from application.steps import IMAGE_KINDS, IMAGE_OPTION_DEFAULTS, IMAGE_POSITIVE, TEXT_STEPS
from application.study import Assignment, Condition, Study
from domain.experiment import Roster
from entrypoints.settings import Settings

# A condition's name is a path segment (`/c/{name}/`) and a CSV value.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_STUDY_KEYS = {"name", "assignment"}
_CONDITION_KEYS = {"name", "prompts", "text_model", "text_endpoints", "images"}
_IMAGE_KINDS = {PurePosixPath(kind).name: kind for kind in IMAGE_KINDS}


class StudyError(Exception):
    """The study file cannot serve; the message names the file, condition, key and reason."""


def endpoint_names(settings: Settings) -> tuple[str, ...]:
    """The text endpoints a condition may name, as the text adapter calls them."""
    if settings.text_backend == "endpoints":
        return tuple(entry.name for entry in settings.text_endpoints)
    if settings.text_backend in ("azure", "openai"):
        return (settings.text_backend,)
    return ()


def load_study(
    settings: Settings,
    default_prompts: PromptCatalog,
    catalog: Callable[[Path], PromptCatalog] | None = None,
) -> Study:
    """The configured study; without a study file, one condition on the prompts directory."""
    if not settings.study_file:
        return Study.single(default_prompts)
    path = Path(settings.study_file).expanduser().resolve()
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudyError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: not valid TOML ({exc})") from None
    return _StudyReader(path, settings, default_prompts, catalog or _filesystem_catalog).read(table)


def served_prompt_sets(study: Study) -> list[PromptCatalog]:
    """Each prompt set the study's conditions use, once (conditions may share one)."""
    unique: dict[int, PromptCatalog] = {}
    for condition in study.conditions:
        unique.setdefault(id(condition.prompts), condition.prompts)
    return list(unique.values())


def _filesystem_catalog(directory: Path) -> PromptCatalog:
    return FilesystemPromptCatalog(directory, TEXT_STEPS, IMAGE_KINDS, IMAGE_POSITIVE)


class _StudyReader:
    def __init__(
        self,
        path: Path,
        settings: Settings,
        default_prompts: PromptCatalog,
        catalog: Callable[[Path], PromptCatalog],
    ) -> None:
        self._path = path
        self._settings = settings
        self._catalog = catalog
        self._catalogs: dict[Path, PromptCatalog] = {}
        default_dir = getattr(default_prompts, "directory", None)
        if default_dir is not None:
            self._catalogs[Path(default_dir).resolve()] = default_prompts
        self._endpoints = endpoint_names(settings)

    def _fail(self, where: str, rule: str) -> StudyError:
        return StudyError(f"{self._path}: {where}: {rule}")

    def read(self, table: Mapping[str, Any]) -> Study:
        unknown = sorted(set(table) - {"study", "conditions"})
        if unknown:
            raise self._fail(unknown[0], "unknown key (known: study, conditions)")
        head = table.get("study", {})
        if not isinstance(head, dict):
            raise self._fail("study", "must be a table")
        for key in sorted(set(head) - _STUDY_KEYS):
            raise self._fail(f"study.{key}", "unknown key (known: name, assignment)")
        name = head.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise self._fail("study.name", "must be a name of letters, digits, '.', '_', '-'")
        try:
            assignment = Assignment(head.get("assignment", Assignment.BALANCED.value))
        except ValueError:
            allowed = ", ".join(a.value for a in Assignment)
            raise self._fail("study.assignment", f"must be one of {allowed}") from None
        entries = table.get("conditions")
        if not isinstance(entries, list) or not entries:
            raise self._fail("conditions", "declare at least one [[conditions]] table")
        conditions = tuple(self._condition(index, entry) for index, entry in enumerate(entries))
        names = [condition.name for condition in conditions]
        for duplicate in sorted({n for n in names if names.count(n) > 1}):
            raise self._fail(f"condition '{duplicate}'", "declared twice")
        study = Study(name, conditions, assignment)
        if assignment is Assignment.ROSTER:
            self._check_roster(study)
        return study

    def _condition(self, index: int, entry: object) -> Condition:
        if not isinstance(entry, dict):
            raise self._fail(f"conditions[{index}]", "must be a table")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise self._fail(
                f"conditions[{index}].name", "must be a name of letters, digits, '.', '_', '-'"
            )
        where = f"condition '{name}'"
        for key in sorted(set(entry) - _CONDITION_KEYS):
            known = ", ".join(sorted(_CONDITION_KEYS))
            raise self._fail(f"{where}: {key}", f"unknown key (known: {known})")
        return Condition(
            name=name,
            prompts=self._prompts(where, entry.get("prompts")),
            text_model=self._text_model(where, entry.get("text_model")),
            text_endpoints=self._text_endpoints(where, entry.get("text_endpoints", [])),
            images=self._images(where, entry.get("images", {})),
        )

    def _prompts(self, where: str, value: object) -> PromptCatalog:
        if value is None:
            value = self._settings.prompts_dir
        if not isinstance(value, str) or not value.strip():
            raise self._fail(f"{where}: prompts", "must be a directory path")
        directory = (self._path.parent / Path(value).expanduser()).resolve()
        if directory not in self._catalogs:
            try:
                self._catalogs[directory] = self._catalog(directory)
            except TemplateError as exc:
                raise self._fail(f"{where}: prompts", str(exc)) from None
        return self._catalogs[directory]

    def _text_model(self, where: str, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self._fail(f"{where}: text_model", "must be a deployment or model name")
        return value.strip()

    def _text_endpoints(self, where: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(f"{where}: text_endpoints", "must be a list of endpoint names")
        for name in value:
            if name not in self._endpoints:
                known = ", ".join(self._endpoints) or (
                    f"none with INSPILOT_TEXT_BACKEND={self._settings.text_backend}"
                )
                raise self._fail(
                    f"{where}: text_endpoints", f"unknown endpoint '{name}' (known: {known})"
                )
        return tuple(value)

    def _images(self, where: str, value: object) -> dict[str, dict[str, Any]]:
        if not isinstance(value, dict):
            raise self._fail(f"{where}: images", "must be a table of image kinds")
        images: dict[str, dict[str, Any]] = {}
        for kind, options in value.items():
            if kind not in _IMAGE_KINDS:
                known = ", ".join(sorted(_IMAGE_KINDS))
                raise self._fail(f"{where}: images.{kind}", f"unknown image kind (known: {known})")
            if not isinstance(options, dict):
                raise self._fail(f"{where}: images.{kind}", "must be a table of txt2img options")
            for key, option in options.items():
                self._check_option(f"{where}: images.{kind}.{key}", key, option)
            images[kind] = dict(options)
        return images

    def _check_option(self, where: str, key: str, value: object) -> None:
        if key == "extra":
            if not isinstance(value, dict):
                raise self._fail(where, "must be a table")
            return
        if key not in IMAGE_OPTION_DEFAULTS:
            known = ", ".join(sorted(IMAGE_OPTION_DEFAULTS))
            raise self._fail(where, f"unknown option (known: {known}, extra)")
        expected = type(IMAGE_OPTION_DEFAULTS[key])
        fits = isinstance(value, expected) and not isinstance(value, bool)
        if expected is float:
            fits = isinstance(value, int | float) and not isinstance(value, bool)
        if not fits:
            raise self._fail(where, f"must be {expected.__name__}")

    def _check_roster(self, study: Study) -> None:
        roster = Roster.of(self._settings.participants)
        if roster.usernames is None:
            raise self._fail(
                "study.assignment", "roster needs INSPILOT_PARTICIPANTS=@file of username,condition"
            )
        for username, condition in sorted(roster.conditions.items()):
            if study.get(condition) is None:
                raise StudyError(
                    f"INSPILOT_PARTICIPANTS: {username}: unknown condition '{condition}' "
                    f"(the study has {', '.join(study.names)})"
                )
