"""Deep divergence (legacy type 1): three stimuli for one of the designer's sketches."""

from __future__ import annotations

import msgspec

from application.pipeline import Limits
from application.use_cases.deep_divergence import (
    DEEP_DIVERGENCE,
    DeepDivergenceCommand,
    DeepDivergenceResult,
)
from domain.attribution import Evidence
from entrypoints.pipelines.base import (
    CreativeOut,
    ImageRef,
    PipelineEntry,
    Sketch,
    present_creatives,
)


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
    inputs: DeepDivergenceInputs, limits: Limits, username: str | None
) -> DeepDivergenceCommand:
    return DeepDivergenceCommand.build(
        inputs.design_task,
        inputs.design_texts,
        inputs.design_image,
        inputs.scheme_id,
        limits,
        username,
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
    kind=DEEP_DIVERGENCE,
    legacy_type=1,
    inputs=DeepDivergenceInputs,
    command=command,
    reply=DeepDivergenceData,
    present=present,
    evidence=evidence,
)
