"""ConvergeExpand: per selected scheme, n groups of scene picture, product picture, function."""

from __future__ import annotations

from dataclasses import dataclass

from application.concurrency import run_all
from application.generation_run import GenerationRun, ModelGateway, ProgressSink
from application.steps import (
    EXPAND_FUNCTIONS,
    EXPAND_PLACES,
    EXPAND_PRODUCT_PROMPTS,
    EXPAND_SCENE_PROMPTS,
    PRODUCT_IMAGES,
    SCENE_IMAGES,
)
from application.use_cases.common import describe_texts, join_items
from domain.creatives import Creative, CreativeType, DisplayType, Item, ItemType
from domain.generation import ImageStep, Pipeline
from domain.stimuli import shown_creatives


@dataclass(frozen=True)
class ConvergeExpandCommand:
    selected_schemes: tuple[tuple[str, ...], ...]
    num: int
    username: str | None = None


@dataclass(frozen=True)
class ConvergeExpandResult:
    creatives: tuple[Creative, ...]


@dataclass(frozen=True)
class _SchemeGroups:
    scenes: list[ImageStep]
    products: list[ImageStep]
    functions: list[str]


class ConvergeExpand:
    """Every scheme runs two chains side by side, and all schemes run at once:
    places → scene prompts → scene images, and functions → product prompts → product images.
    The critical path is three text calls and one image, whatever the number of schemes.
    """

    def __init__(self, gateway: ModelGateway) -> None:
        self._gateway = gateway

    async def execute(
        self, command: ConvergeExpandCommand, progress: ProgressSink | None = None
    ) -> ConvergeExpandResult:
        inputs = {
            "selected_schemes": [
                {"design_texts": list(texts)} for texts in command.selected_schemes
            ],
            "num": command.num,
        }
        pictures = 2 * command.num * len(command.selected_schemes)  # a scene and a product each
        async with self._gateway.run(
            Pipeline.CONVERGE_EXPAND, inputs, command.username, progress=progress, images=pictures
        ) as run:
            per_scheme: list[_SchemeGroups] = await run_all(
                _expand_scheme(run, describe_texts(texts), command.num)
                for texts in command.selected_schemes
            )
            creatives = tuple(
                Creative(
                    CreativeType.CONVERGENCE_GROUP_TWO,
                    DisplayType.DIRECT,
                    (
                        Item(
                            ItemType.GROUP_TYPE_TWO,
                            combinations=(
                                Item.image_item(
                                    ItemType.ABSTRACT_IMAGE, scene.image or b"", scene.id
                                ),
                                Item.image_item(
                                    ItemType.CONCRETE_IMAGE, product.image or b"", product.id
                                ),
                                Item.text_item(ItemType.CONCRETE_TEXT, function),
                            ),
                        ),
                    ),
                )
                for groups in per_scheme
                for scene, product, function in zip(
                    groups.scenes, groups.products, groups.functions, strict=True
                )
            )
            run.result = [
                {
                    "functions": groups.functions,
                    "scene_images": [step.id for step in groups.scenes],
                    "product_images": [step.id for step in groups.products],
                }
                for groups in per_scheme
            ]
            run.stimuli = shown_creatives(creatives)
            return ConvergeExpandResult(creatives)


async def _expand_scheme(run: GenerationRun, scheme: str, num: int) -> _SchemeGroups:
    scenes, (functions, products) = await run_all(
        [_scene_chain(run, scheme, num), _product_chain(run, scheme, num)]
    )
    return _SchemeGroups(scenes=scenes, products=products, functions=functions)


async def _scene_chain(run: GenerationRun, scheme: str, num: int) -> list[ImageStep]:
    places = await run.ask_list(EXPAND_PLACES, {"scheme": scheme, "num": str(num)}, num)
    prompts = await run.ask_list(
        EXPAND_SCENE_PROMPTS, {"places": join_items(places), "num": str(num)}, num
    )
    return await run.render_images(SCENE_IMAGES, prompts)


async def _product_chain(
    run: GenerationRun, scheme: str, num: int
) -> tuple[list[str], list[ImageStep]]:
    functions = await run.ask_list(EXPAND_FUNCTIONS, {"scheme": scheme, "num": str(num)}, num)
    prompts = await run.ask_list(
        EXPAND_PRODUCT_PROMPTS, {"functions": join_items(functions), "num": str(num)}, num
    )
    return functions, await run.render_images(PRODUCT_IMAGES, prompts)
