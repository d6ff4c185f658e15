"""The registry: one entry per generation kind. A new kind is one module and one line here."""

from __future__ import annotations

from typing import Any

from domain.errors import InvalidInput
from entrypoints.pipelines import (
    converge_expand,
    converge_select,
    deep_divergence,
    rapid_divergence,
)
from entrypoints.pipelines.base import PipelineEntry

# Entries of different kinds side by side: Python has no type for "some inputs, command
# and result", so the registry holds them as Any; each module's ENTRY is checked where built.
AnyEntry = PipelineEntry[Any, Any, Any]

PIPELINES: tuple[AnyEntry, ...] = (
    rapid_divergence.ENTRY,
    deep_divergence.ENTRY,
    converge_select.ENTRY,
    converge_expand.ENTRY,
)

_BY_LEGACY_TYPE = {entry.legacy_type: entry for entry in PIPELINES}
_BY_NAME = {entry.pipeline.value: entry for entry in PIPELINES}


def _listed(values: list[str]) -> str:
    return ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]


def by_legacy_type(kind: int) -> AnyEntry:
    entry = _BY_LEGACY_TYPE.get(kind)
    if entry is None:
        known = _listed([str(key) for key in _BY_LEGACY_TYPE])
        raise InvalidInput("type", f"unknown type {kind}; must be {known}")
    return entry


def by_name(name: str, field: str = "pipeline") -> AnyEntry:
    entry = _BY_NAME.get(name)
    if entry is None:
        raise InvalidInput(field, f"unknown pipeline '{name}'; must be {_listed(list(_BY_NAME))}")
    return entry
