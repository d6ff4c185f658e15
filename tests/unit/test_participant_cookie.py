"""The participant cookie's signing key and signature."""

from __future__ import annotations

import stat
from pathlib import Path

from entrypoints.http.participant_cookie import ParticipantCookies
from entrypoints.secret_key import KEY_FILE, signing_key


def test_a_generated_key_is_kept_private_and_reused(tmp_path: Path) -> None:
    first = signing_key("", tmp_path / "data")
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing_key("", tmp_path / "data") == first  # a restart keeps cookies valid
    assert len(first) >= 32


def test_a_configured_key_wins_and_memory_storage_gets_a_fresh_one(tmp_path: Path) -> None:
    assert signing_key("configured", tmp_path) == b"configured"
    assert not (tmp_path / KEY_FILE).exists()
    assert signing_key("", tmp_path, ephemeral=True) != signing_key("", tmp_path, ephemeral=True)
    assert not (tmp_path / KEY_FILE).exists()


def test_only_a_cookie_signed_with_the_key_names_a_participant() -> None:
    cookies = ParticipantCookies(b"k" * 32)
    value = cookies.value("张三")
    assert cookies.participant(value) == "张三"
    assert ParticipantCookies(b"x" * 32).participant(value) is None
    name, signature = value.split(".")
    assert cookies.participant(f"{name}.{signature[:-2]}AA") is None
    for junk in ("", "nodot", "a.b.c", "!!.??", None):
        assert cookies.participant(junk) is None
