"""Convergence, name and select (legacy type 2): a name per scheme, the most promising chosen."""

from __future__ import annotations

import msgspec

from application.use_cases.converge_select import (
    ConvergeSelect,
    ConvergeSelectCommand,
    ConvergeSelectResult,
    SchemeSketch,
)
from domain.attribution import Evidence
from domain.errors import InvalidInput
from domain.generation import Pipeline
from entrypoints.pipelines.base import (
    ImageRef,
    Limits,
    PipelineEntry,
    Sketch,
    check_length,
    check_sketch,
    check_texts,
)
from entrypoints.wire import FieldPath


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
    inputs: ConvergeSelectInputs, limits: Limits, at: FieldPath, username: str | None
) -> ConvergeSelectCommand:
    if inputs.select_num < 1:
        raise InvalidInput(at("select_num"), "must be at least 1")
    if not inputs.schemes:
        raise InvalidInput(at("schemes"), "must list at least one scheme")
    if len(inputs.schemes) > limits.max_num * 4:
        raise InvalidInput(at("schemes"), f"must list at most {limits.max_num * 4} schemes")
    schemes = tuple(
        SchemeSketch(
            design_texts=check_texts(scheme.design_texts, at("schemes", index, "design_texts")),
            design_image=check_sketch(
                scheme.design_image, at("schemes", index, "design_image"), limits
            ),
        )
        for index, scheme in enumerate(inputs.schemes)
    )
    return ConvergeSelectCommand(
        design_task=check_length(inputs.design_task, at("design_task")),
        select_num=inputs.select_num,
        schemes=schemes,
        username=username,
    )


def present(result: ConvergeSelectResult, image_ref: ImageRef) -> ConvergeSelectData:
    return ConvergeSelectData(names=list(result.names), selected=list(result.selected))


def evidence(inputs: ConvergeSelectInputs) -> Evidence:
    return Evidence.of(
        sketches=[scheme.design_image for scheme in inputs.schemes],
        texts=[scheme.design_texts for scheme in inputs.schemes],
    )


ENTRY = PipelineEntry(
    pipeline=Pipeline.CONVERGE_SELECT,
    legacy_type=2,
    inputs=ConvergeSelectInputs,
    command=command,
    use_case=ConvergeSelect,
    reply=ConvergeSelectData,
    present=present,
    evidence=evidence,
)
