"""Matching a model's free-text choices to the names it was asked to choose from."""

from __future__ import annotations

from collections.abc import Sequence

_LOOSE = str.maketrans("", "", " \t\"'“”‘’「」『』《》【】[]()（）")


def _loose(text: str) -> str:
    return text.translate(_LOOSE).casefold()


def _match_one(answer: str, names: Sequence[str]) -> str | None:
    """Exact first; then the longest name quoted inside the answer; then the one name
    the answer abbreviates (only if unambiguous)."""
    loose_answer = _loose(answer)
    if not loose_answer:
        return None
    loose_names = [(name, _loose(name)) for name in names if _loose(name)]
    for name, loose_name in loose_names:
        if loose_name == loose_answer:
            return name
    quoted = [name for name, loose_name in loose_names if loose_name in loose_answer]
    if quoted:
        return max(quoted, key=len)
    abbreviated = [name for name, loose_name in loose_names if loose_answer in loose_name]
    return abbreviated[0] if len(abbreviated) == 1 else None


def match_choices(answers: Sequence[str], names: Sequence[str], limit: int) -> list[str]:
    """Map each answer to one of `names`, dropping what matches none and any repeat.

    Models quote loosely ("《智能水杯》", "方案2：智能水杯"), so quotes and spaces are
    ignored and a name quoted inside a longer answer still counts.
    """
    chosen: list[str] = []
    for answer in answers:
        match = _match_one(answer, names)
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
