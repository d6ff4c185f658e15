"""Replies that carry pictures: base64 text spliced in as it is, never scanned again.

msgspec checks every character of a string for escaping: 15 ms (with the GIL held) for
the six 2.4 MB pictures of a rapid-divergence reply. Base64 never needs escaping, so the
reply is encoded with a marker for each picture and the pictures' bytes joined in.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

# Unique per process: no model answer or participant text can contain it.
_MARKER = f"\x00{uuid.uuid4().hex}\x00"
_MARKER_JSON = msgspec.json.encode(_MARKER)[1:-1]


class TrustedJsonText:
    """Text that needs no JSON escaping (base64 of a picture), put in a reply unscanned."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def encode_spliced(value: Any) -> bytes:
    """JSON of `value`, equal to msgspec's, with every TrustedJsonText copied in as is."""
    pieces: list[bytes] = []

    def hook(obj: Any) -> Any:
        if not isinstance(obj, TrustedJsonText):
            raise NotImplementedError(f"cannot encode {type(obj).__name__}")
        text = obj.text
        if not text.isascii() or '"' in text or "\\" in text:
            return text  # not what it claimed: encoded (escaped) the ordinary way
        pieces.append(text.encode("ascii"))
        return _MARKER

    skeleton = msgspec.json.encode(value, enc_hook=hook)
    if not pieces:
        return skeleton
    parts = skeleton.split(_MARKER_JSON)
    joined = [parts[0]]
    for piece, part in zip(pieces, parts[1:], strict=True):
        joined += [piece, part]
    return b"".join(joined)
