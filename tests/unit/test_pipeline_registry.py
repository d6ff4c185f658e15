"""A new pipeline touches the files docs/adding-a-pipeline.md names, and no others."""

from __future__ import annotations

import re

from domain.generation import Pipeline
from entrypoints.pipelines.registry import PIPELINES
from entrypoints.settings import REPO_ROOT

SOURCES = ("domain", "application", "adapters", "entrypoints", "prompts")


def _touched_by(pipeline: Pipeline) -> set[str]:
    """Source files that name the pipeline; a prompts directory counts once."""
    touched: set[str] = set()
    for top in SOURCES:
        for path in (REPO_ROOT / top).rglob("*"):
            if not path.is_file() or path.suffix not in {".py", ".txt", ".toml"}:
                continue
            relative = path.relative_to(REPO_ROOT).as_posix()
            text = path.read_text(encoding="utf-8")
            named = pipeline.value in text or f"Pipeline.{pipeline.name}" in text
            if pipeline.value in relative or named:
                if relative.startswith("prompts/"):
                    relative = relative.rsplit("/", 1)[0] + "/"
                touched.add(relative)
    return touched


def _guide_files() -> list[str]:
    guide = (REPO_ROOT / "docs" / "adding-a-pipeline.md").read_text(encoding="utf-8")
    section = guide.split("# Adding a pipeline", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\d+\. `([^`]+)`", section, flags=re.MULTILINE)


def test_every_pipeline_is_registered_once() -> None:
    assert sorted(entry.pipeline for entry in PIPELINES) == sorted(Pipeline)
    assert len({entry.legacy_type for entry in PIPELINES}) == len(PIPELINES)


def test_a_pipeline_touches_exactly_the_files_the_guide_names() -> None:
    listed = _guide_files()
    assert len(listed) == 6, listed
    for pipeline in Pipeline:
        expected = {name.replace("<pipeline>", pipeline.value) for name in listed}
        assert _touched_by(pipeline) == expected, pipeline
