"""Every prompt step the pipelines run, and the variables each template may use.

The prompt catalog checks the designers' templates against this table at start-up,
so a typo in a placeholder stops the service instead of a participant's session.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepSpec:
    key: str
    required: frozenset[str]
    optional: frozenset[str] = frozenset()

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional


def _spec(key: str, required: set[str], optional: set[str] | None = None) -> StepSpec:
    return StepSpec(key, frozenset(required), frozenset(optional or ()))


RAPID_PRODUCTS = _spec("paint/rapid_divergence/products", {"task", "num"})
RAPID_PLACES = _spec("paint/rapid_divergence/places", {"products", "num"}, {"task"})
RAPID_SCENE_PROMPTS = _spec("paint/rapid_divergence/scene_prompts", {"places", "num"}, {"task"})
RAPID_CONCEPTS = _spec("paint/rapid_divergence/concepts", {"products", "num"}, {"task"})

DEEP_IDENTIFY = _spec("paint/deep_divergence/identify", {"design_texts"}, {"design_task"})
DEEP_PRODUCTS = _spec("paint/deep_divergence/products", {"product", "num"}, {"design_task"})
DEEP_PLACES = _spec("paint/deep_divergence/places", {"products", "num"}, {"design_task"})
DEEP_SCENE_PROMPTS = _spec("paint/deep_divergence/scene_prompts", {"places", "num"})
DEEP_CONCEPTS = _spec("paint/deep_divergence/concepts", {"products", "num"})
DEEP_FUNCTIONS = _spec("paint/deep_divergence/functions", {"products", "num"}, {"design_task"})

SELECT_NAMES = _spec("paint/converge_select/name_schemes", {"schemes", "num"}, {"design_task"})
SELECT_CHOOSE = _spec(
    "paint/converge_select/choose", {"schemes", "names", "select_num"}, {"design_task"}
)

EXPAND_PLACES = _spec("paint/converge_expand/places", {"scheme", "num"})
EXPAND_SCENE_PROMPTS = _spec("paint/converge_expand/scene_prompts", {"places", "num"})
EXPAND_FUNCTIONS = _spec("paint/converge_expand/functions", {"scheme", "num"})
EXPAND_PRODUCT_PROMPTS = _spec("paint/converge_expand/product_prompts", {"functions", "num"})

TEXT_STEPS: tuple[StepSpec, ...] = (
    RAPID_PRODUCTS,
    RAPID_PLACES,
    RAPID_SCENE_PROMPTS,
    RAPID_CONCEPTS,
    DEEP_IDENTIFY,
    DEEP_PRODUCTS,
    DEEP_PLACES,
    DEEP_SCENE_PROMPTS,
    DEEP_CONCEPTS,
    DEEP_FUNCTIONS,
    SELECT_NAMES,
    SELECT_CHOOSE,
    EXPAND_PLACES,
    EXPAND_SCENE_PROMPTS,
    EXPAND_FUNCTIONS,
    EXPAND_PRODUCT_PROMPTS,
)

# Image templates: `<kind>.positive.txt` wraps the bare prompt ($prompt), `<kind>.negative.txt`
# is sent as is, and `options.toml` holds per-kind txt2img options.
SCENE_IMAGES = "paint/images/scene"
PRODUCT_IMAGES = "paint/images/product"
IMAGE_KINDS: tuple[str, ...] = (SCENE_IMAGES, PRODUCT_IMAGES)
IMAGE_POSITIVE = StepSpec("positive", frozenset({"prompt"}))

# txt2img options a template may set, with the study's defaults (CONTRACT.md).
IMAGE_OPTION_DEFAULTS: dict[str, object] = {
    "width": 1024,
    "height": 576,
    "steps": 30,
    "cfg_scale": 5.0,
    "sampler_name": "DPM++ 2M SDE Karras",
    "styles": ["photographic"],
    "seed": -1,
    "denoising_strength": 0.7,
    "checkpoint": "sd_xl_base_1.0",
}
