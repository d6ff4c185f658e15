"""ConvergeExpand: per selected scheme, n groups of scene picture, product picture, function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from application.concurrency import run_all, run_both
from application.generation_run import GenerationRun, ModelGateway, ProgressSink
from application.pipeline import Limits, PipelineKind, check_num, check_texts
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
from domain.errors import InvalidInput
from domain.generation import ImageStep, Pipeline
from domain.stimuli import shown_creatives


@dataclass(frozen=True)
class ConvergeExpandCommand:
    selected_schemes: tuple[tuple[str, ...], ...]
    num: int
    username: str | None = None

    @classmethod
    def build(
        cls,
        selected_schemes: Sequence[list[str] | tuple[str, ...]],
        num: int,
        limits: Limits,
        username: str | None = None,
    ) -> ConvergeExpandCommand:
        """`selected_schemes` as each scheme's notes; schemes × num pictures of each kind
        stay within 3 × the `num` limit."""
        if not selected_schemes:
            raise InvalidInput("selected_schemes", "must list at least one scheme")
        checked_num = check_num(num, "num", limits)
        total = checked_num * len(selected_schemes)
        if total > limits.max_num * 3:
            raise InvalidInput(
                "selected_schemes",
                f"schemes × num must be at most {limits.max_num * 3} (asked {total})",
            )
        schemes = tuple(
            check_texts(texts, f"selected_schemes[{index}].design_texts")
            for index, texts in enumerate(selected_schemes)
        )
        return cls(schemes, checked_num, username)


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
    scenes, (functions, products) = await run_both(
        _scene_chain(run, scheme, num), _product_chain(run, scheme, num)
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


CONVERGE_EXPAND = PipelineKind(Pipeline.CONVERGE_EXPAND, ConvergeExpand)
