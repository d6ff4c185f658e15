"""Deep divergence (legacy type 1): three stimuli for one of the designer's sketches."""

from __future__ import annotations

import msgspec

from application.use_cases.deep_divergence import (
    DeepDivergenceCommand,
    DeepDivergenceResult,
    GenerateDeepDivergence,
)
from domain.attribution import Evidence
from domain.generation import Pipeline
from entrypoints.pipelines.base import (
    CreativeOut,
    ImageRef,
    Limits,
    PipelineEntry,
    Sketch,
    check_length,
    check_sketch,
    check_texts,
    present_creatives,
)
from entrypoints.wire import FieldPath


class DeepDivergenceInputs(msgspec.Struct):
    design_task: str
    scheme_id: int | str
    design_texts: list[str] = []
    design_image: Sketch = None


class DeepDivergenceData(msgspec.Struct, rename="camel"):
    scheme_id: int | str
    count: int
    result: list[CreativeOut]


def command(
    inputs: DeepDivergenceInputs, limits: Limits, at: FieldPath, username: str | None
) -> DeepDivergenceCommand:
    return DeepDivergenceCommand(
        design_task=check_length(inputs.design_task, at("design_task")),
        design_texts=check_texts(inputs.design_texts, at("design_texts")),
        design_image=check_sketch(inputs.design_image, at("design_image"), limits),
        scheme_id=inputs.scheme_id,
        username=username,
    )


def present(result: DeepDivergenceResult, image_ref: ImageRef) -> DeepDivergenceData:
    return DeepDivergenceData(
        scheme_id=result.scheme_id,
        count=len(result.creatives),
        result=present_creatives(result.creatives, image_ref),
    )


def evidence(inputs: DeepDivergenceInputs) -> Evidence:
    return Evidence.of(sketches=[inputs.design_image], texts=[inputs.design_texts])


ENTRY = PipelineEntry(
    pipeline=Pipeline.DEEP_DIVERGENCE,
    legacy_type=1,
    inputs=DeepDivergenceInputs,
    command=command,
    use_case=GenerateDeepDivergence,
    reply=DeepDivergenceData,
    present=present,
    evidence=evidence,
)
