"""Convergence, expand (legacy type 3): per selected scheme, n groups of two pictures and a text."""

from __future__ import annotations

import msgspec

from application.use_cases.converge_expand import (
    ConvergeExpand,
    ConvergeExpandCommand,
    ConvergeExpandResult,
)
from domain.attribution import Evidence
from domain.errors import InvalidInput
from domain.generation import Pipeline
from entrypoints.pipelines.base import (
    CreativeOut,
    ImageRef,
    Limits,
    PipelineEntry,
    check_num,
    check_texts,
    present_creatives,
)
from entrypoints.wire import FieldPath


class SelectedSchemeInputs(msgspec.Struct):
    design_texts: list[str] = []


class ConvergeExpandInputs(msgspec.Struct):
    selected_schemes: list[SelectedSchemeInputs]
    num: int


class ConvergeExpandData(msgspec.Struct):
    result: list[CreativeOut]


def command(
    inputs: ConvergeExpandInputs, limits: Limits, at: FieldPath, username: str | None
) -> ConvergeExpandCommand:
    if not inputs.selected_schemes:
        raise InvalidInput(at("selected_schemes"), "must list at least one scheme")
    num = check_num(inputs.num, at("num"), limits)
    total = num * len(inputs.selected_schemes)
    if total > limits.max_num * 3:
        raise InvalidInput(
            at("selected_schemes"),
            f"schemes × num must be at most {limits.max_num * 3} (asked {total})",
        )
    return ConvergeExpandCommand(
        selected_schemes=tuple(
            check_texts(scheme.design_texts, at("selected_schemes", index, "design_texts"))
            for index, scheme in enumerate(inputs.selected_schemes)
        ),
        num=num,
        username=username,
    )


def present(result: ConvergeExpandResult, image_ref: ImageRef) -> ConvergeExpandData:
    return ConvergeExpandData(result=present_creatives(result.creatives, image_ref))


def evidence(inputs: ConvergeExpandInputs) -> Evidence:
    return Evidence.of(texts=[scheme.design_texts for scheme in inputs.selected_schemes])


ENTRY = PipelineEntry(
    pipeline=Pipeline.CONVERGE_EXPAND,
    legacy_type=3,
    inputs=ConvergeExpandInputs,
    command=command,
    use_case=ConvergeExpand,
    reply=ConvergeExpandData,
    present=present,
    evidence=evidence,
)
