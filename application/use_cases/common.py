"""Pieces the pipelines share: how lists and notes go into prompts, and the scene chain."""

from __future__ import annotations

from application.generation_run import GenerationRun
from application.steps import SCENE_IMAGES, StepSpec
from domain.generation import ImageStep

NO_TEXTS = "（无文字说明）"


def join_items(items: list[str]) -> str:
    """Lists go into prompts the way models are asked to answer: `#`-separated."""
    return "#".join(items)


def describe_texts(texts: tuple[str, ...]) -> str:
    """The designer's notes as one line for a prompt; a sketch without notes says so."""
    kept = [text.strip() for text in texts if text.strip()]
    return "；".join(kept) if kept else NO_TEXTS


async def scene_chain(
    run: GenerationRun,
    places_step: StepSpec,
    prompts_step: StepSpec,
    subjects: list[str],
    context: dict[str, str],
) -> list[ImageStep]:
    """One usage place per subject, an SD prompt per place, then all scene images at once.

    `context` carries variables a template may use beside the list (the design task).
    """
    n = len(subjects)
    places = await run.ask_list(
        places_step, {**context, "products": join_items(subjects), "num": str(n)}, n
    )
    prompts = await run.ask_list(
        prompts_step, {**context, "places": join_items(places), "num": str(n)}, n
    )
    return await run.render_images(SCENE_IMAGES, prompts)
