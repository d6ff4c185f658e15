"""Who a generation belongs to when the client does not say: the evidence and the rule.

The front end sends no username with `/generate`, so a record is tied to its participant
by what the request carries that only that participant has: a signed cookie, a sketch
they saved, their notes, or (in a lab) the computer they sit at. Two or more candidates
are never guessed between.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

SKETCH_KEY = "canvasImage"
TEXTS_KEY = "texts"


class AttributedBy(StrEnum):
    """Which rule named the participant, strongest first."""

    USERNAME = "username"
    COOKIE = "cookie"
    SKETCH = "sketch"
    ADDRESS = "address"


class ConditionBy(StrEnum):
    """Why a generation ran in its condition."""

    PARTICIPANT = "participant"  # the attributed participant's stored condition
    PREFIX = "prefix"  # the `/c/{condition}/` route it came in on
    REQUEST = "request"  # the jobs API or the CLI named one
    DEFAULT = "default"  # none of these: the study's first condition


def sketch_key(data_uri: str) -> str:
    """The key of a sketch as sent: the SHA-256 of its text, which is also the hash under
    which a saved `canvasImage` is stored (so a saved session's blob list is the index)."""
    return hashlib.sha256(data_uri.encode("utf-8", "surrogatepass")).hexdigest()


def texts_key(texts: Iterable[str]) -> str | None:
    """The key of a scheme's notes in order; None when it has none (no evidence at all:
    many participants have sketches without notes)."""
    kept = [text.strip() for text in texts if isinstance(text, str) and text.strip()]
    if not kept:
        return None
    encoded = json.dumps(kept, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()


def scheme_keys(scheme: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """A saved scheme's sketch key and notes key, as a later `/generate` would send them."""
    image = scheme.get(SKETCH_KEY)
    sketch = sketch_key(image) if isinstance(image, str) and image else None
    notes = scheme.get(TEXTS_KEY)
    texts: list[str] = []
    if isinstance(notes, list):
        texts = [note.get("text", "") for note in notes if isinstance(note, Mapping)]
    return sketch, texts_key(texts)


@dataclass(frozen=True)
class Evidence:
    """What a generation request carries that may name its participant."""

    sketches: frozenset[str] = frozenset()
    texts: frozenset[str] = frozenset()
    address: str | None = None

    @classmethod
    def of(
        cls,
        sketches: Iterable[str | None] = (),
        texts: Iterable[Sequence[str]] = (),
        address: str | None = None,
    ) -> Evidence:
        return cls(
            frozenset(sketch_key(s) for s in sketches if s),
            frozenset(key for key in (texts_key(t) for t in texts) if key),
            address,
        )

    @classmethod
    def of_schemes(
        cls, schemes: Iterable[Mapping[str, Any]], address: str | None = None
    ) -> Evidence:
        """What saved schemes hold that may name a generation: their sketches and notes."""
        keys = [scheme_keys(scheme) for scheme in schemes]
        return cls(
            frozenset(sketch for sketch, _ in keys if sketch),
            frozenset(notes for _, notes in keys if notes),
            address,
        )

    def with_address(self, address: str | None) -> Evidence:
        return Evidence(self.sketches, self.texts, address)

    def shares_with(self, other: Evidence) -> bool:
        """Whether the two have a sketch, notes or (when both have one) the address in common."""
        return bool(
            self.sketches & other.sketches
            or self.texts & other.texts
            or (self.address is not None and self.address == other.address)
        )

    @property
    def empty(self) -> bool:
        return not self.sketches and not self.texts and self.address is None


@dataclass(frozen=True)
class Attribution:
    """The participant a generation belongs to (None: nobody could be named), and how.

    `at` is set when the participant was named after the generation ran (a later save
    made a rule hold); None when it was known before the run.
    """

    participant: str | None = None
    by: AttributedBy | None = None
    at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.participant is None) != (self.by is None):
            raise ValueError("a participant and the rule that named it go together")


NOBODY = Attribution()
NO_EVIDENCE = Evidence()


def only_candidate(candidates: Iterable[str]) -> str | None:
    """The participant when exactly one is a candidate; never a guess among several."""
    unique = set(candidates)
    return next(iter(unique)) if len(unique) == 1 else None
