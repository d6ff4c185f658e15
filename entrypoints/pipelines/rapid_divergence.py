"""Rapid divergence (legacy type 0): N scene pictures, each with an abstract concept text."""

from __future__ import annotations

import msgspec

from application.use_cases.rapid_divergence import (
    GenerateRapidDivergence,
    RapidDivergenceCommand,
    RapidDivergenceResult,
)
from domain.generation import Pipeline
from entrypoints.pipelines.base import (
    CreativeOut,
    ImageRef,
    Limits,
    PipelineEntry,
    check_num,
    check_text,
    present_creatives,
)
from entrypoints.wire import FieldPath


class RapidDivergenceInputs(msgspec.Struct):
    task: str
    num: int


class RapidDivergenceData(msgspec.Struct):
    count: int
    result: list[CreativeOut]


def command(
    inputs: RapidDivergenceInputs, limits: Limits, at: FieldPath, username: str | None
) -> RapidDivergenceCommand:
    return RapidDivergenceCommand(
        task=check_text(inputs.task, at("task")),
        num=check_num(inputs.num, at("num"), limits),
        username=username,
    )


def present(result: RapidDivergenceResult, image_ref: ImageRef) -> RapidDivergenceData:
    return RapidDivergenceData(
        count=len(result.creatives), result=present_creatives(result.creatives, image_ref)
    )


ENTRY = PipelineEntry(
    pipeline=Pipeline.RAPID_DIVERGENCE,
    legacy_type=0,
    inputs=RapidDivergenceInputs,
    command=command,
    use_case=GenerateRapidDivergence,
    reply=RapidDivergenceData,
    present=present,
)
