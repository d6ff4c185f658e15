"""Matching a model's free-text choices to the names it was asked to choose from."""

from __future__ import annotations

from collections.abc import Sequence

_LOOSE = str.maketrans("", "", " \t\"'“”‘’「」『』《》【】[]()（）")


def _loose(text: str) -> str:
    return text.translate(_LOOSE).casefold()


def match_choices(answers: Sequence[str], names: Sequence[str], limit: int) -> list[str]:
    """Map each answer to one of `names`, dropping what matches none and any repeat.

    Models quote loosely ("《智能水杯》", "方案2：智能水杯"), so an answer matches a name
    when one contains the other after quotes and spaces are ignored; the longest name
    wins, so "智能水杯Pro" is not taken for "智能水杯".
    """
    by_length = sorted(names, key=len, reverse=True)
    chosen: list[str] = []
    for answer in answers:
        loose_answer = _loose(answer)
        if not loose_answer:
            continue
        match = next(
            (
                name
                for name in by_length
                if _loose(name) and (_loose(name) in loose_answer or loose_answer in _loose(name))
            ),
            None,
        )
        if match is not None and match not in chosen:
            chosen.append(match)
        if len(chosen) == limit:
            break
    return chosen


def make_unique(names: Sequence[str]) -> list[str]:
    """Suffix repeated names ("杯", "杯2") so a chosen name points at exactly one scheme."""
    used: set[str] = set()
    unique: list[str] = []
    for name in names:
        candidate, count = name, 1
        while candidate in used:
            count += 1
            candidate = f"{name}{count}"
        used.add(candidate)
        unique.append(candidate)
    return unique
