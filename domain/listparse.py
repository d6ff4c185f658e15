"""Parsing a model's `#`-separated list and reconciling its length with what was asked.

Models are asked for `a#b#c` with no numbering, but answer with numbering, newlines,
full-width `＃`, quotes, a preamble or one item too many or too few. This is where that
looseness is absorbed, so the pipelines see a clean list or a clear mismatch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATORS = re.compile(r"[#＃]")
_LINE_BREAKS = re.compile(r"[\r\n]+")
# "1.", "1、", "1)", "(1)", "（1）", "1:", "①", "- ", "* ", "• " at the start of an item.
_NUMBERING = re.compile(r"^\s*(?:[(（\[]?\d{1,2}\s*[).、:：）\]]|[①-⑳]|[-*•·])\s*")
_QUOTES = "\"'“”‘’「」『』《》`"
_TRAILING_PUNCTUATION = "。；;，,"


@dataclass(frozen=True)
class ListMismatch:
    """What was asked and what came back, when they cannot be reconciled."""

    expected: int
    received: int

    def describe(self) -> str:
        return f"expected {self.expected} items, the model gave {self.received}"


def clean_item(raw: str) -> str:
    """Strip numbering, bullets, quotes and trailing punctuation from one item."""
    item = raw.strip()
    previous = None
    while previous != item:
        previous = item
        item = _NUMBERING.sub("", item, count=1).strip()
        item = item.strip(_QUOTES).strip()
    return item.rstrip(_TRAILING_PUNCTUATION).strip()


def _is_preamble(line: str) -> bool:
    """A line such as "以下是六个产品：" introduces the list and is not an item."""
    stripped = line.strip()
    return stripped.endswith((":", "：")) and not _SEPARATORS.search(stripped)


def split_items(answer: str) -> list[str]:
    """Split an answer into clean, non-empty items.

    `#` (half or full width) separates items; an answer without any `#` but with
    several lines is read one item per line, since that is how models most often
    disobey. Newlines inside `#`-separated answers are folded away.
    """
    lines = [line for line in _LINE_BREAKS.split(answer.strip()) if not _is_preamble(line)]
    text = "\n".join(lines)
    if _SEPARATORS.search(text):
        parts = _SEPARATORS.split(text)
    else:
        parts = _LINE_BREAKS.split(text)
    items = [clean_item(_LINE_BREAKS.sub(" ", part)) for part in parts]
    return [item for item in items if item]


def reconcile(items: list[str], expected: int) -> list[str] | ListMismatch:
    """Fit a parsed list to the expected count.

    Too many: the surplus at the end is dropped (models add a last item, rarely a first).
    Too few: a mismatch, so the caller asks again rather than inventing stimuli.
    """
    if len(items) >= expected:
        return items[:expected]
    return ListMismatch(expected=expected, received=len(items))


def parse_list(answer: str, expected: int) -> list[str] | ListMismatch:
    """Split and reconcile in one go."""
    return reconcile(split_items(answer), expected)
