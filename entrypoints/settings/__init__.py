"""Settings: every `INSPILOT_*` variable, decoded and checked once at start-up.

Values come from the environment, or from a TOML file named by `INSPILOT_CONFIG_FILE`
(keys are the variable names without the prefix, in lower case); the environment
wins. A wrong value stops start-up with a message naming the variable. The settings are
declared by concern, one module each; `Settings` is all of them in one frozen object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from entrypoints.settings.models import ModelSettings
from entrypoints.settings.operations import OperationsSettings
from entrypoints.settings.parsing import (
    PREFIX,
    REPO_ROOT,
    Setting,
    SettingsError,
    _file_values,
)
from entrypoints.settings.server import ServerSettings
from entrypoints.settings.storage import StorageSettings
from entrypoints.settings.study import StudySettings
from entrypoints.text_endpoints import with_keys

__all__ = ["PREFIX", "REPO_ROOT", "SETTINGS", "Setting", "Settings", "SettingsError"]


@dataclass(frozen=True)
class Settings(OperationsSettings, StudySettings, StorageSettings, ModelSettings, ServerSettings):
    """Every setting: its field name upper-cased behind `INSPILOT_` is the variable."""

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
