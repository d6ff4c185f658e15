"""Convergence, expand (legacy type 3): per selected scheme, n groups of two pictures and a text."""

from __future__ import annotations

import msgspec

from application.pipeline import Limits
from application.use_cases.converge_expand import (
    CONVERGE_EXPAND,
    ConvergeExpandCommand,
    ConvergeExpandResult,
)
from domain.attribution import Evidence
from entrypoints.pipelines.base import CreativeOut, ImageRef, PipelineEntry, present_creatives


class SelectedSchemeInputs(msgspec.Struct):
    design_texts: list[str] = []


class ConvergeExpandInputs(msgspec.Struct):
    selected_schemes: list[SelectedSchemeInputs]
    num: int


class ConvergeExpandData(msgspec.Struct):
    result: list[CreativeOut]


def command(
    inputs: ConvergeExpandInputs, limits: Limits, username: str | None
) -> ConvergeExpandCommand:
    notes = [scheme.design_texts for scheme in inputs.selected_schemes]
    return ConvergeExpandCommand.build(notes, inputs.num, limits, username)


def present(result: ConvergeExpandResult, image_ref: ImageRef) -> ConvergeExpandData:
    return ConvergeExpandData(result=present_creatives(result.creatives, image_ref))


def evidence(inputs: ConvergeExpandInputs) -> Evidence:
    return Evidence.of(texts=[scheme.design_texts for scheme in inputs.selected_schemes])


ENTRY = PipelineEntry(
    kind=CONVERGE_EXPAND,
    legacy_type=3,
    inputs=ConvergeExpandInputs,
    command=command,
    reply=ConvergeExpandData,
    present=present,
    evidence=evidence,
)
