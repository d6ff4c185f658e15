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


@dataclass(frozen=True)
class FittedImage:
    """The data URI to send and what happened to it (`2048x1152 -> 1024x576`, `800x600`)."""

    uri: str
    note: str


def fit_for_vision(uri: str, max_side: int = DEFAULT_MAX_SIDE) -> FittedImage:
    """The picture scaled down to `max_side` on its longest side, as a JPEG; one already
    small enough, or one Pillow cannot read, is sent as it came.

    JPEG, not PNG: a downscaled line drawing gains grey edge pixels that PNG compresses
    badly (measured: twice the bytes of the full-size PNG), while JPEG at quality 90 is
    a third smaller than the original and quicker to encode (benchmarks/vision_scaling.py).
    Transparent canvas areas are laid on white, as the participant saw them.
    """
    payload = uri.partition(",")[2]
    try:
        data = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if max(width, height) <= max_side:
                return FittedImage(uri, f"{width}x{height}")
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced size
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            flat = _on_white(image)
            out = io.BytesIO()
            flat.save(out, format="JPEG", quality=90)
    except (ValueError, OSError, Image.DecompressionBombError):
        # binascii.Error is a ValueError, UnidentifiedImageError an OSError.
        return FittedImage(uri, "unreadable, sent as it came")
    sent = base64.b64encode(out.getvalue()).decode("ascii")
    return FittedImage(
        f"data:image/jpeg;base64,{sent}",
        f"{width}x{height} -> {flat.width}x{flat.height} jpeg",
    )


def _on_white(image: Image.Image) -> Image.Image:
    if image.mode in ("RGB", "L"):
        return image
    rgba = image.convert("RGBA")
    white = Image.new("RGB", rgba.size, "white")
    white.paste(rgba, mask=rgba.getchannel("A"))
    return white
