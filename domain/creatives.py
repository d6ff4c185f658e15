"""Creatives: the stimuli the front end shows, in the exact shape CONTRACT.md defines."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class CreativeType(IntEnum):
    RAPID_ABSTRACT = 0
    RAPID_CONCRETE = 1
    DEEP = 2
    CONVERGENCE_GROUP_ONE = 3
    CONVERGENCE_GROUP_TWO = 4


class DisplayType(StrEnum):
    SEQUENCE = "sequence"
    DIRECT = "direct"


class ItemType(StrEnum):
    ABSTRACT_TEXT = "abstractText"
    CONCRETE_TEXT = "concreteText"
    ABSTRACT_IMAGE = "abstractImage"
    CONCRETE_IMAGE = "concreteImage"
    GROUP_TYPE_ONE = "groupTypeOne"
    GROUP_TYPE_TWO = "groupTypeTwo"


_TEXT_TYPES = {ItemType.ABSTRACT_TEXT, ItemType.CONCRETE_TEXT}
_IMAGE_TYPES = {ItemType.ABSTRACT_IMAGE, ItemType.CONCRETE_IMAGE}


@dataclass(frozen=True)
class Item:
    """One stimulus. A text item carries text, an image item PNG bytes, a group its parts.

    The check makes a blank stimulus impossible to build: the original service sent
    empty strings as images when a model failed, and participants saw nothing.
    """

    type: ItemType
    text: str | None = None
    image: bytes | None = None
    combinations: tuple[Item, ...] | None = None
    # The image step that painted `image`, so an API can link the picture instead of inlining it.
    image_id: str | None = None

    def __post_init__(self) -> None:
        if self.type in _TEXT_TYPES and not (self.text and self.text.strip()):
            raise ValueError(f"a {self.type} item needs non-empty text")
        if self.type in _IMAGE_TYPES and not self.image:
            raise ValueError(f"a {self.type} item needs image bytes")
        if self.type not in _TEXT_TYPES | _IMAGE_TYPES and not self.combinations:
            raise ValueError(f"a {self.type} item needs combinations")

    @classmethod
    def text_item(cls, item_type: ItemType, text: str) -> Item:
        return cls(type=item_type, text=text)

    @classmethod
    def image_item(cls, item_type: ItemType, image: bytes, image_id: str | None = None) -> Item:
        return cls(type=item_type, image=image, image_id=image_id)


@dataclass(frozen=True)
class Creative:
    """A group of items the front end shows together."""

    type: CreativeType
    display_type: DisplayType
    items: tuple[Item, ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("a creative needs at least one item")


def images_of(creatives: tuple[Creative, ...]) -> dict[str, bytes]:
    """Every picture in `creatives` by the id of the step that painted it."""
    found: dict[str, bytes] = {}
    pending = [item for creative in creatives for item in creative.items]
    while pending:
        item = pending.pop()
        if item.image is not None and item.image_id is not None:
            found[item.image_id] = item.image
        pending.extend(item.combinations or ())
    return found
