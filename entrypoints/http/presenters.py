"""Domain objects in the exact JSON shapes of CONTRACT.md."""

from __future__ import annotations

import base64
from typing import Any

from domain.creatives import Creative, Item
from domain.experiment import Experiment, Stage

_SCHEME_KEYS = {
    Stage.RAPID_DIVERGENCE: "rapidDivergenceSchemes",
    Stage.DEEP_DIVERGENCE: "deepDivergenceSchemes",
    Stage.CONVERGENCE: "convergenceSchemes",
}


def present_item(item: Item) -> dict[str, Any]:
    """All four keys always present; images as bare base64, the front end adds the prefix."""
    return {
        "type": item.type.value,
        "text": item.text,
        "image": base64.b64encode(item.image).decode("ascii") if item.image else None,
        "combinations": (
            [present_item(part) for part in item.combinations] if item.combinations else None
        ),
    }


def present_creative(creative: Creative) -> dict[str, Any]:
    return {
        "type": int(creative.type),
        "displayType": creative.display_type.value,
        "items": [present_item(item) for item in creative.items],
    }


def present_creatives(creatives: tuple[Creative, ...]) -> list[dict[str, Any]]:
    return [present_creative(creative) for creative in creatives]


def present_session(experiment: Experiment) -> dict[str, Any]:
    session: dict[str, Any] = {
        "_id": experiment.id,
        "username": experiment.username,
        "currentStage": experiment.current_stage.value,
        "designTask": experiment.design_task,
    }
    for stage, key in _SCHEME_KEYS.items():
        session[key] = list(experiment.schemes_of(stage))
    return session
