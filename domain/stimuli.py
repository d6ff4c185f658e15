"""Stimuli as the participant saw them: which item stood where, with which text or picture.

A reply's creatives are kept in the generation record in this flat form, so researchers
can say "participant P was shown picture X with text Y in position 3" without knowing
each pipeline's internals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.creatives import Creative, Item

NAME_KIND = "name"
"""The kind of a convergence (type 2) row: one scheme's name, selected or not."""


@dataclass(frozen=True)
class Shown:
    """One item shown.

    `creative` counts the reply's creatives from 1 (None for type 2, which answers names,
    not creatives); `position` counts the items within it from 1 in the order they are
    shown (the parts of a group in turn), or the scheme's place for a name. `group` is
    the kind of the group item a part belongs to; `image_id` the image step that painted
    the picture; `selected` says, for a name, whether the model chose it.
    """

    creative: int | None
    position: int
    kind: str
    text: str | None = None
    image_id: str | None = None
    group: str | None = None
    selected: bool | None = None


def _leaves(item: Item) -> list[tuple[Item, str | None]]:
    if item.combinations:
        return [(part, item.type.value) for part in item.combinations]
    return [(item, None)]


def shown_creatives(creatives: Sequence[Creative]) -> tuple[Shown, ...]:
    """Every item of the reply, in order."""
    rows = []
    for number, creative in enumerate(creatives, 1):
        leaves = [leaf for item in creative.items for leaf in _leaves(item)]
        for position, (item, group) in enumerate(leaves, 1):
            rows.append(
                Shown(
                    creative=number,
                    position=position,
                    kind=item.type.value,
                    text=item.text,
                    image_id=item.image_id if item.image else None,
                    group=group,
                )
            )
    return tuple(rows)


def shown_names(names: Sequence[str], selected: Sequence[str]) -> tuple[Shown, ...]:
    """A type 2 reply: each scheme's name in the schemes' order, and whether it was chosen."""
    chosen = set(selected)
    return tuple(
        Shown(creative=None, position=place, kind=NAME_KIND, text=name, selected=name in chosen)
        for place, name in enumerate(names, 1)
    )
