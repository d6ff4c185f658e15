"""Sketches made the size a vision model uses before they are sent.

A vision model looks at a picture at about 1,024 px on its longest side whatever it is
sent; a participant's canvas may be several times larger, and type 2 sends up to 48 of
them in one request. Scaling them down first saves upload time and tokens without
changing what the model sees. The record says what was sent (`image_sizes`).

Pillow decodes and resamples: a PNG and JPEG decoder and a proper downscaling filter
are not code to write ourselves.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from PIL import Image

DEFAULT_MAX_SIDE = 1024
_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG"}


@dataclass(frozen=True)
class FittedImage:
    """The data URI to send and what happened to it (`2048x1152 -> 1024x576`, `800x600`)."""

    uri: str
    note: str


def fit_for_vision(uri: str, max_side: int = DEFAULT_MAX_SIDE) -> FittedImage:
    """The picture scaled down to `max_side` on its longest side, in its own format; one
    already small enough, or one Pillow cannot read, is sent as it came."""
    header, _, payload = uri.partition(",")
    media = header.removeprefix("data:").partition(";")[0].lower()
    try:
        data = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if max(width, height) <= max_side:
                return FittedImage(uri, f"{width}x{height}")
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            kind = _FORMATS.get(media, "PNG")
            fitted = image.convert("RGB") if kind == "JPEG" and image.mode != "L" else image
            out = io.BytesIO()
            fitted.save(out, format=kind, **({"quality": 90} if kind == "JPEG" else {}))
    except (ValueError, OSError, Image.DecompressionBombError):
        # binascii.Error is a ValueError, UnidentifiedImageError an OSError.
        return FittedImage(uri, "unreadable, sent as it came")
    sent = base64.b64encode(out.getvalue()).decode("ascii")
    return FittedImage(
        f"data:image/{kind.lower()};base64,{sent}",
        f"{width}x{height} -> {fitted.width}x{fitted.height}",
    )
