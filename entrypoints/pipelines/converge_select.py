"""Convergence, name and select (legacy type 2): a name per scheme, the most promising chosen."""

from __future__ import annotations

import msgspec

from application.pipeline import Limits
from application.use_cases.converge_select import (
    CONVERGE_SELECT,
    ConvergeSelectCommand,
    ConvergeSelectResult,
)
from domain.attribution import Evidence
from entrypoints.pipelines.base import ImageRef, PipelineEntry, Sketch


class SketchedSchemeInputs(msgspec.Struct):
    design_texts: list[str] = []
    design_image: Sketch = None


class ConvergeSelectInputs(msgspec.Struct):
    design_task: str
    select_num: int
    schemes: list[SketchedSchemeInputs]


class ConvergeSelectData(msgspec.Struct):
    names: list[str]
    selected: list[str]


def command(
    inputs: ConvergeSelectInputs, limits: Limits, username: str | None
) -> ConvergeSelectCommand:
    schemes = [(scheme.design_texts, scheme.design_image) for scheme in inputs.schemes]
    return ConvergeSelectCommand.build(
        inputs.design_task, inputs.select_num, schemes, limits, username
    )


def present(result: ConvergeSelectResult, image_ref: ImageRef) -> ConvergeSelectData:
    return ConvergeSelectData(names=list(result.names), selected=list(result.selected))


def evidence(inputs: ConvergeSelectInputs) -> Evidence:
    return Evidence.of(
        sketches=[scheme.design_image for scheme in inputs.schemes],
        texts=[scheme.design_texts for scheme in inputs.schemes],
    )


ENTRY = PipelineEntry(
    kind=CONVERGE_SELECT,
    legacy_type=2,
    inputs=ConvergeSelectInputs,
    command=command,
    reply=ConvergeSelectData,
    present=present,
    evidence=evidence,
)
