"""Rules for images that come from clients: data URIs or bare base64 of PNG or JPEG."""

from __future__ import annotations

import base64
import binascii
import re

from domain.errors import InvalidInput

_DATA_URI = re.compile(r"^data:(image/(?:png|jpeg|jpg));base64,", re.IGNORECASE)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"


def sniff_image_type(data: bytes) -> str | None:
    if data.startswith(PNG_SIGNATURE):
        return "image/png"
    if data.startswith(JPEG_SIGNATURE):
        return "image/jpeg"
    return None


def normalise_image(value: str, field: str, max_bytes: int) -> str:
    """Check a client image and return it as a data URI the vision model accepts.

    The decoded size is estimated before decoding so an oversized image costs nothing.
    """
    match = _DATA_URI.match(value)
    payload = value[match.end() :] if match else value
    payload = "".join(payload.split())
    if len(payload) * 3 // 4 > max_bytes:
        raise InvalidInput(field, f"image must be at most {max_bytes // (1024 * 1024)} MB")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(field, "must be a PNG or JPEG data URI or base64") from None
    kind = sniff_image_type(data)
    if kind is None:
        raise InvalidInput(field, "must be a PNG or JPEG image")
    return f"data:{kind};base64,{payload}"
