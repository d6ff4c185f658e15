"""The signed `inspilot_participant` cookie: set by `/paint/start`, it names the participant
of later requests from the same browser (when the front end shares the API's origin)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from litestar.datastructures import Cookie

from domain.errors import InvalidInput
from domain.experiment import check_username

COOKIE_NAME = "inspilot_participant"
# A study runs for days; a browser kept open over a weekend keeps its participant.
MAX_AGE_S = 30 * 24 * 3600
_CONTEXT = b"inspilot participant cookie v1\x00"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ParticipantCookies:
    """Signs and checks the cookie with HMAC-SHA256; a forged or altered one names nobody."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _signature(self, username: bytes) -> bytes:
        return hmac.new(self._key, _CONTEXT + username, hashlib.sha256).digest()

    def value(self, username: str) -> str:
        raw = username.encode("utf-8")
        return f"{_b64(raw)}.{_b64(self._signature(raw))}"

    def participant(self, value: str | None) -> str | None:
        """The username a valid cookie names, else None."""
        if not value or value.count(".") != 1:
            return None
        name_part, signature_part = value.split(".")
        try:
            raw = _unb64(name_part)
            signature = _unb64(signature_part)
            username = check_username(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, InvalidInput):
            return None
        if not hmac.compare_digest(signature, self._signature(raw)):
            return None
        return username

    def cookie(self, username: str, *, secure: bool) -> Cookie:
        return Cookie(
            key=COOKIE_NAME,
            value=self.value(username),
            path="/",
            httponly=True,
            samesite="lax",
            secure=secure,
            max_age=MAX_AGE_S,
        )
