"""The CLI cannot mislead: it says where the data is and refuses to write an empty study."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from entrypoints.cli import main, study_lines
from entrypoints.settings import Settings
from tests.fakes.uvicorn_thread import free_port


@pytest.fixture(autouse=True)
def nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSPILOT_PORT", str(free_port()))


def test_export_from_a_directory_without_a_database_refuses_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # another directory: ./.inspilot/data does not exist here
    monkeypatch.setenv("INSPILOT_STORAGE_BACKEND", "embedded")
    monkeypatch.delenv("INSPILOT_DATA_DIR", raising=False)
    code = main(["export", "--out", "study.zip"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"no embedded database in {tmp_path / '.inspilot' / 'data'}" in err
    assert "INSPILOT_DATA_DIR" in err
    assert not (tmp_path / ".inspilot").exists() and not (tmp_path / "study.zip").exists()


def test_an_empty_store_is_refused_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSPILOT_STORAGE_BACKEND", "memory")
    out = tmp_path / "study.zip"
    assert main(["export", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no session and no generation" in err and "--allow-empty" in err
    assert not out.exists() and not (tmp_path / "study.zip.partial").exists()

    assert main(["export", "--out", str(out), "--allow-empty"]) == 0
    err = capsys.readouterr().err
    assert "inspilot: data: memory" in err
    assert f"wrote {out}: 0 participants, 0 generations, 0 pictures" in err
    assert "datapackage.json" in zipfile.ZipFile(out).namelist()


def test_the_start_up_lines_say_what_is_on(tmp_path: Path) -> None:
    roster = tmp_path / "roster.txt"
    roster.write_text("p01\np02\n# a comment\np03\n", encoding="utf-8")
    settings = Settings.load(
        {
            "INSPILOT_DATA_DIR": "relative/data",
            "INSPILOT_RESEARCH_TOKEN": "t",
            "INSPILOT_PARTICIPANTS": f"@{roster}",
        }
    )
    data, study = study_lines(settings)
    assert data == f"data directory {Path('relative/data').resolve()}"
    assert "research API on; dashboard on; roster 3 names" in study
    closed = study_lines(Settings.load({"INSPILOT_STORAGE_BACKEND": "memory"}))
    assert closed == [
        "research API off (no INSPILOT_RESEARCH_TOKEN); dashboard off (no "
        "INSPILOT_RESEARCH_TOKEN); roster open (any username); study file none"
    ]
