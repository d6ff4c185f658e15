"""`inspilot generate` runs one job offline on the demo models and writes it to a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.demo_images import render_png
from entrypoints.cli import main


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSPILOT_STORAGE_BACKEND", "memory")
    monkeypatch.setenv("INSPILOT_TEXT_BACKEND", "demo")
    monkeypatch.setenv("INSPILOT_IMAGES_BACKEND", "demo")


def _pictures(result: Any) -> list[str]:
    return [
        item["image"]
        for creative in result.get("result", [])
        for group in creative["items"]
        for item in [group, *(group["combinations"] or [])]
        if item["image"]
    ]


def test_rapid_divergence_writes_the_result_and_its_pictures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        ["generate", "rapid_divergence", "--task", "厨房用品", "--num", "3", "--out", str(out)]
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert result["count"] == 3
    files = _pictures(result)
    assert len(files) == 3 and all(name.endswith(".png") for name in files)
    for name in files:
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    progress = capsys.readouterr().err
    step_lines = [line for line in progress.splitlines() if line.startswith("paint/")]
    assert len(step_lines) == 4 and all("attempt 1  ok" in line for line in step_lines)
    assert "pictures [" in progress and "3/3" in progress


def test_sketches_come_from_files(tmp_path: Path) -> None:
    sketch = tmp_path / "sketch.png"
    sketch.write_bytes(render_png(32, 24, 5))
    out = tmp_path / "deep"
    code = main(
        [
            "generate",
            "deep_divergence",
            "--design-task",
            "厨房",
            "--design-texts",
            "可以折叠",
            "--design-texts",
            "带灯",
            "--design-image",
            str(sketch),
            "--scheme-id",
            "7",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert result["schemeId"] == 7 and len(_pictures(result)) == 3

    scheme = json.dumps({"design_texts": ["保温"], "design_image": str(sketch)})
    code = main(
        [
            "generate",
            "converge_select",
            "--design-task",
            "厨房",
            "--select-num",
            "1",
            "--schemes",
            scheme,
            "--schemes",
            '{"design_texts": ["折叠"]}',
            "--out",
            str(tmp_path / "select"),
        ]
    )
    assert code == 0
    chosen = json.loads((tmp_path / "select" / "result.json").read_text(encoding="utf-8"))
    assert len(chosen["names"]) == 2 and set(chosen["selected"]) <= set(chosen["names"])


def test_bad_inputs_are_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["generate", "rapid_divergence", "--task", "t", "--num", "0", "--out", str(tmp_path / "x")]
    )
    assert code == 2 and "num: must be between 1 and 12" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    missing = str(tmp_path / "missing.png")
    code = main(
        [
            "generate",
            "deep_divergence",
            "--design-task",
            "t",
            "--scheme-id",
            "1",
            "--design-image",
            missing,
            "--out",
            str(tmp_path / "y"),
        ]
    )
    assert code == 2 and "design_image: cannot read sketch file" in capsys.readouterr().err


def test_a_condition_runs_on_its_own_prompt_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.http.test_conditions import study_file

    monkeypatch.setenv("INSPILOT_STUDY_FILE", str(study_file(tmp_path)))
    texts = {}
    for condition in ("baseline", "vivid"):
        out = tmp_path / condition
        args = ["generate", "rapid_divergence", "--task", "厨房", "--num", "2"]
        assert main([*args, "--condition", condition, "--out", str(out)]) == 0
        result = json.loads((out / "result.json").read_text(encoding="utf-8"))
        texts[condition] = [c["items"][1]["text"] for c in result["result"]]
    # The demo model answers each prompt in its own way: another wording, other stimuli.
    assert texts["baseline"] != texts["vivid"]
    args = ["generate", "rapid_divergence", "--task", "厨房", "--num", "1"]
    assert main([*args, "--condition", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "condition: unknown condition 'nope'" in capsys.readouterr().err
