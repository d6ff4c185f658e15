"""GenerateDeepDivergence: three stimuli (scene, concept, function) for one sketch."""

from __future__ import annotations

from dataclasses import dataclass

from application.concurrency import run_three
from application.generation_run import ModelGateway, ProgressSink
from application.pipeline import (
    Limits,
    PipelineKind,
    check_length,
    check_sketch,
    check_texts,
)
from application.steps import (
    DEEP_CONCEPTS,
    DEEP_FUNCTIONS,
    DEEP_IDENTIFY,
    DEEP_PLACES,
    DEEP_PRODUCTS,
    DEEP_SCENE_PROMPTS,
)
from application.use_cases.common import describe_texts, join_items, scene_chain
from domain.creatives import Creative, CreativeType, DisplayType, Item, ItemType
from domain.errors import InvalidInput
from domain.generation import Pipeline
from domain.stimuli import shown_creatives

DEEP_STIMULI = 3


@dataclass(frozen=True)
class DeepDivergenceCommand:
    design_task: str
    design_texts: tuple[str, ...]
    design_image: str | None
    scheme_id: int | str
    username: str | None = None

    def __post_init__(self) -> None:
        if not self.design_image and not any(text.strip() for text in self.design_texts):
            raise InvalidInput(
                "design_texts", "a scheme needs texts or a design_image to work from"
            )

    @classmethod
    def build(
        cls,
        design_task: str,
        design_texts: list[str] | tuple[str, ...],
        design_image: str | None,
        scheme_id: int | str,
        limits: Limits,
        username: str | None = None,
    ) -> DeepDivergenceCommand:
        """The command for one sketch: notes and sketch checked, the scheme id kept as sent."""
        return cls(
            design_task=check_length(design_task, "design_task"),
            design_texts=check_texts(design_texts, "design_texts"),
            design_image=check_sketch(design_image, "design_image", limits),
            scheme_id=scheme_id,
            username=username,
        )


@dataclass(frozen=True)
class DeepDivergenceResult:
    scheme_id: int | str
    creatives: tuple[Creative, ...]


class GenerateDeepDivergence:
    """Name the sketch (vision), three related products, then scenes, concepts and functions.

    Scenes (places → prompts → images), concepts and functions all need only the
    products, so the three run side by side.
    """

    def __init__(self, gateway: ModelGateway) -> None:
        self._gateway = gateway

    async def execute(
        self, command: DeepDivergenceCommand, progress: ProgressSink | None = None
    ) -> DeepDivergenceResult:
        inputs = {
            "design_task": command.design_task,
            "design_texts": list(command.design_texts),
            "design_image": command.design_image,
            "scheme_id": command.scheme_id,
        }
        async with self._gateway.run(
            Pipeline.DEEP_DIVERGENCE,
            inputs,
            command.username,
            progress=progress,
            images=DEEP_STIMULI,
        ) as run:
            texts = describe_texts(command.design_texts)
            (name,) = await run.ask_list(
                DEEP_IDENTIFY,
                {"design_task": command.design_task, "design_texts": texts},
                1,
                images=[command.design_image] if command.design_image else [],
            )
            n = DEEP_STIMULI
            products = await run.ask_list(
                DEEP_PRODUCTS,
                {"product": f"{name}：{texts}", "num": str(n), "design_task": command.design_task},
                n,
            )
            listed = {"products": join_items(products), "num": str(n)}
            images, concepts, functions = await run_three(
                scene_chain(
                    run,
                    DEEP_PLACES,
                    DEEP_SCENE_PROMPTS,
                    products,
                    {"design_task": command.design_task},
                ),
                run.ask_list(DEEP_CONCEPTS, listed, n),
                run.ask_list(DEEP_FUNCTIONS, {**listed, "design_task": command.design_task}, n),
            )
            creatives = tuple(
                Creative(
                    CreativeType.DEEP,
                    DisplayType.SEQUENCE,
                    (
                        Item.image_item(ItemType.ABSTRACT_IMAGE, image.image or b"", image.id),
                        Item.text_item(ItemType.ABSTRACT_TEXT, concept),
                        Item.text_item(ItemType.CONCRETE_TEXT, function),
                    ),
                )
                for image, concept, function in zip(images, concepts, functions, strict=True)
            )
            run.result = {
                "name": name,
                "products": products,
                "concepts": concepts,
                "functions": functions,
                "images": [image.id for image in images],
            }
            run.stimuli = shown_creatives(creatives)
            return DeepDivergenceResult(command.scheme_id, creatives)


DEEP_DIVERGENCE = PipelineKind(Pipeline.DEEP_DIVERGENCE, GenerateDeepDivergence)
