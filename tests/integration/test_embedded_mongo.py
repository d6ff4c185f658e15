"""The embedded server: a usable URI, a clear error when SecantusDB or the data dir is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pymongo import MongoClient

from adapters.embedded_mongo import EmbeddedMongoServer
from domain.errors import StorageError


def test_start_returns_a_uri_drivers_can_use(tmp_path: Path) -> None:
    pytest.importorskip("secantus")
    with EmbeddedMongoServer(str(tmp_path / "new" / "dir")) as uri:
        assert uri.startswith("mongodb://127.0.0.1:") and "directConnection=true" in uri
        with MongoClient(uri, serverSelectionTimeoutMS=2000) as client:
            assert client.admin.command("ping")["ok"] == 1


def test_a_data_dir_in_use_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("secantus")
    with EmbeddedMongoServer(str(tmp_path)):
        with pytest.raises(StorageError, match="in use"):
            EmbeddedMongoServer(str(tmp_path)).start()


def test_without_secantus_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "secantus", None)  # makes `import secantus` fail
    with pytest.raises(StorageError, match=r"pip install -e '\.\[embedded\]'"):
        EmbeddedMongoServer(str(tmp_path)).start()
