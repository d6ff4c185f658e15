"""ConvergeSelect: name every scheme from its sketch and notes, then choose the most promising."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from application.generation_run import ModelGateway, ProgressSink
from application.pipeline import Limits, PipelineKind, check_length, check_sketch, check_texts
from application.steps import SELECT_CHOOSE, SELECT_NAMES
from application.use_cases.common import describe_texts
from domain.choices import make_unique, match_choices
from domain.creatives import Creative
from domain.errors import InvalidInput
from domain.generation import Pipeline
from domain.listparse import ListMismatch, split_items
from domain.stimuli import shown_names

# The choice is asked once more when nothing in the answer matches a name, then fails.
CHOOSE_ATTEMPTS = 2


@dataclass(frozen=True)
class SchemeSketch:
    design_texts: tuple[str, ...]
    design_image: str | None


@dataclass(frozen=True)
class ConvergeSelectCommand:
    design_task: str
    select_num: int
    schemes: tuple[SchemeSketch, ...]
    username: str | None = None

    @classmethod
    def build(
        cls,
        design_task: str,
        select_num: int,
        schemes: Sequence[tuple[list[str] | tuple[str, ...], str | None]],
        limits: Limits,
        username: str | None = None,
    ) -> ConvergeSelectCommand:
        """`schemes` as (notes, sketch) pairs; at most 4 × the `num` limit of them."""
        if select_num < 1:
            raise InvalidInput("select_num", "must be at least 1")
        if not schemes:
            raise InvalidInput("schemes", "must list at least one scheme")
        if len(schemes) > limits.max_num * 4:
            raise InvalidInput("schemes", f"must list at most {limits.max_num * 4} schemes")
        checked = tuple(
            SchemeSketch(
                design_texts=check_texts(texts, f"schemes[{index}].design_texts"),
                design_image=check_sketch(image, f"schemes[{index}].design_image", limits),
            )
            for index, (texts, image) in enumerate(schemes)
        )
        return cls(check_length(design_task, "design_task"), select_num, checked, username)


@dataclass(frozen=True)
class ConvergeSelectResult:
    names: tuple[str, ...]
    selected: tuple[str, ...]

    @property
    def creatives(self) -> tuple[Creative, ...]:
        """Name-and-select shows names, not creatives."""
        return ()


def describe_schemes(schemes: tuple[SchemeSketch, ...], names: list[str] | None = None) -> str:
    """List the schemes in order, saying which attached image is whose sketch.

    Sketches may be missing, so image k is not always scheme k: the listing names it.
    """
    lines = []
    image_number = 0
    for index, scheme in enumerate(schemes, start=1):
        label = f"方案{index}" + (f"「{names[index - 1]}」" if names else "")
        if scheme.design_image:
            image_number += 1
            sketch = f"草图：第{image_number}张图片"
        else:
            sketch = "草图：无"
        lines.append(f"{label}：文字说明：{describe_texts(scheme.design_texts)}。{sketch}")
    return "\n".join(lines)


class ConvergeSelect:
    """One name per scheme, in order, unique; `selected` holds only names from `names`."""

    def __init__(self, gateway: ModelGateway) -> None:
        self._gateway = gateway

    async def execute(
        self, command: ConvergeSelectCommand, progress: ProgressSink | None = None
    ) -> ConvergeSelectResult:
        inputs = {
            "design_task": command.design_task,
            "select_num": command.select_num,
            "schemes": [
                {"design_texts": list(s.design_texts), "design_image": s.design_image}
                for s in command.schemes
            ],
        }
        async with self._gateway.run(
            Pipeline.CONVERGE_SELECT, inputs, command.username, progress=progress
        ) as run:
            count = len(command.schemes)
            raw_names = await run.ask_list(
                SELECT_NAMES,
                {
                    "design_task": command.design_task,
                    "schemes": describe_schemes(command.schemes),
                    "num": str(count),
                },
                count,
                images=[s.design_image for s in command.schemes if s.design_image],
            )
            names = make_unique(raw_names)
            if command.select_num >= count:
                # Nothing to choose: every scheme is selected, and no model is asked.
                run.result = {"names": names, "selected": names, "selected_without_model": True}
                run.stimuli = shown_names(names, names)
                return ConvergeSelectResult(tuple(names), tuple(names))
            wanted = command.select_num

            def fit(answer: str) -> list[str] | ListMismatch:
                chosen = match_choices(split_items(answer), names, wanted)
                return chosen or ListMismatch(expected=wanted, received=0)

            selected = await run.ask_list(
                SELECT_CHOOSE,
                {
                    "design_task": command.design_task,
                    "schemes": describe_schemes(command.schemes, names),
                    "names": "#".join(names),
                    "select_num": str(wanted),
                },
                wanted,
                options=names,
                reconcile=fit,
                attempts=CHOOSE_ATTEMPTS,
            )
            run.result = {"names": names, "selected": selected}
            run.stimuli = shown_names(names, selected)
            return ConvergeSelectResult(tuple(names), tuple(selected))


CONVERGE_SELECT = PipelineKind(Pipeline.CONVERGE_SELECT, ConvergeSelect)
