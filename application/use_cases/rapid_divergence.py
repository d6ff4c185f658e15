"""GenerateRapidDivergence: N scene pictures, each paired with an abstract concept text."""

from __future__ import annotations

from dataclasses import dataclass

from application.concurrency import run_both
from application.generation_run import ModelGateway, ProgressSink
from application.pipeline import Limits, PipelineKind, check_num, check_text
from application.steps import (
    RAPID_CONCEPTS,
    RAPID_PLACES,
    RAPID_PRODUCTS,
    RAPID_SCENE_PROMPTS,
)
from application.use_cases.common import join_items, scene_chain
from domain.creatives import Creative, CreativeType, DisplayType, Item, ItemType
from domain.generation import Pipeline
from domain.stimuli import shown_creatives


@dataclass(frozen=True)
class RapidDivergenceCommand:
    task: str
    num: int
    username: str | None = None

    @classmethod
    def build(
        cls, task: str, num: int, limits: Limits, username: str | None = None
    ) -> RapidDivergenceCommand:
        """The command, once the task says something and `num` is within the limit."""
        return cls(check_text(task, "task"), check_num(num, "num", limits), username)


@dataclass(frozen=True)
class RapidDivergenceResult:
    creatives: tuple[Creative, ...]


class GenerateRapidDivergence:
    """Products, then two chains side by side: places → SD prompts → images, and concepts.

    The concept texts need only the products, so they never wait for the scenes.
    """

    def __init__(self, gateway: ModelGateway) -> None:
        self._gateway = gateway

    async def execute(
        self, command: RapidDivergenceCommand, progress: ProgressSink | None = None
    ) -> RapidDivergenceResult:
        inputs = {"task": command.task, "num": command.num}
        async with self._gateway.run(
            Pipeline.RAPID_DIVERGENCE,
            inputs,
            command.username,
            progress=progress,
            images=command.num,
        ) as run:
            n = command.num
            products = await run.ask_list(RAPID_PRODUCTS, {"task": command.task, "num": str(n)}, n)
            images, concepts = await run_both(
                scene_chain(
                    run, RAPID_PLACES, RAPID_SCENE_PROMPTS, products, {"task": command.task}
                ),
                run.ask_list(
                    RAPID_CONCEPTS,
                    {"products": join_items(products), "num": str(n), "task": command.task},
                    n,
                ),
            )
            creatives = tuple(
                Creative(
                    CreativeType.RAPID_ABSTRACT,
                    DisplayType.SEQUENCE,
                    (
                        Item.image_item(ItemType.ABSTRACT_IMAGE, image.image or b"", image.id),
                        Item.text_item(ItemType.ABSTRACT_TEXT, concept),
                    ),
                )
                for image, concept in zip(images, concepts, strict=True)
            )
            run.result = {
                "products": products,
                "concepts": concepts,
                "images": [image.id for image in images],
            }
            run.stimuli = shown_creatives(creatives)
            return RapidDivergenceResult(creatives)


RAPID_DIVERGENCE = PipelineKind(Pipeline.RAPID_DIVERGENCE, GenerateRapidDivergence)
