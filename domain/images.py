"""Rules for images that come from clients: data URIs or bare base64 of PNG or JPEG."""

from __future__ import annotations

import base64
import binascii
import hashlib
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


class EncodedImage(bytes):
    """Image bytes that remember the base64 text they arrived as and their SHA-256.

    An SDXL picture (1.5-1.8 MB) arrives base64-encoded from the instance and leaves
    base64-encoded in the reply: keeping the text spares a 2.4 MB re-encode per picture,
    and the digest, computed once off the event loop, is the picture's storage key.
    Plain `bytes` everywhere else, so code that only needs the bytes is unaffected.
    """

    _base64: str | None
    _sha256: str | None

    def __new__(
        cls, data: bytes, *, base64_text: str | None = None, sha256: str | None = None
    ) -> EncodedImage:
        image = super().__new__(cls, data)
        image._base64 = base64_text
        image._sha256 = sha256
        return image

    @property
    def base64(self) -> str:
        if self._base64 is None:
            self._base64 = base64.b64encode(self).decode("ascii")
        return self._base64

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self).hexdigest()
        return self._sha256


def image_base64(data: bytes) -> str:
    """The image as base64 text, reusing the text it arrived as when there is one."""
    if isinstance(data, EncodedImage):
        return data.base64
    return base64.b64encode(data).decode("ascii")


def image_sha256(data: bytes) -> str:
    """The image's SHA-256 (hex), computed at most once per EncodedImage."""
    if isinstance(data, EncodedImage):
        return data.sha256
    return hashlib.sha256(data).hexdigest()


def decode_data_uri(value: object) -> bytes | None:
    """The picture of a PNG or JPEG data URI, when it decodes back to exactly that URI.

    Callers that replace the URI with its bytes (stored once, by hash) rebuild it with
    `data_uri`; a URI that would not come back byte-equal is left alone.
    """
    if not isinstance(value, str):
        return None
    match = _DATA_URI.match(value)
    if match is None:
        return None
    payload = value[match.end() :]
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    if sniff_image_type(data) is None or data_uri(data, match[1]) != value:
        return None
    return data


def data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
