"""Rapid divergence (legacy type 0): N scene pictures, each with an abstract concept text."""

from __future__ import annotations

import msgspec

from application.pipeline import Limits
from application.use_cases.rapid_divergence import (
    RAPID_DIVERGENCE,
    RapidDivergenceCommand,
    RapidDivergenceResult,
)
from entrypoints.pipelines.base import CreativeOut, ImageRef, PipelineEntry, present_creatives


class RapidDivergenceInputs(msgspec.Struct):
    task: str
    num: int


class RapidDivergenceData(msgspec.Struct):
    count: int
    result: list[CreativeOut]


def command(
    inputs: RapidDivergenceInputs, limits: Limits, username: str | None
) -> RapidDivergenceCommand:
    return RapidDivergenceCommand.build(inputs.task, inputs.num, limits, username)


def present(result: RapidDivergenceResult, image_ref: ImageRef) -> RapidDivergenceData:
    return RapidDivergenceData(
        count=len(result.creatives), result=present_creatives(result.creatives, image_ref)
    )


ENTRY = PipelineEntry(
    kind=RAPID_DIVERGENCE,
    legacy_type=0,
    inputs=RapidDivergenceInputs,
    command=command,
    reply=RapidDivergenceData,
    present=present,
)
