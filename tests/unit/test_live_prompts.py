"""Prompt sets swapped while serving: validated whole, refused whole, pinned per run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.demo_text import DemoTextGenerator
from adapters.filesystem_prompts import FilesystemPromptCatalog
from adapters.memory_repository import InMemoryExperimentRepository
from application.generation_run import ModelGateway
from application.ports import TextAnswer, TextGenerator, TextRequest
from application.steps import RAPID_PLACES, TEXT_STEPS
from application.use_cases.rapid_divergence import GenerateRapidDivergence, RapidDivergenceCommand
from entrypoints.cli import main
from tests.unit.conftest import catalog_of
from tests.unit.fakes import FakeImageGenerator, TickingClock

PLACES = "paint/rapid_divergence/places.txt"
MARKER = "请避开室内场所，优先选择户外。"


_catalog = catalog_of


def _append(directory: Path, relative: str, text: str) -> None:
    path = directory / relative
    path.write_text(path.read_text(encoding="utf-8") + "\n" + text, encoding="utf-8")


def test_same_wording_in_two_directories_has_one_set_version(
    prompts: FilesystemPromptCatalog, prompt_copy: Path
) -> None:
    copy = _catalog(prompt_copy)
    assert copy.set_version == prompts.set_version and len(copy.set_version) == 16
    assert copy.reload().applied and copy.reload().changed is False


def test_a_valid_edit_is_swapped_in_whole(prompt_copy: Path) -> None:
    catalog = _catalog(prompt_copy)
    before, places_before = catalog.set_version, catalog.version(RAPID_PLACES.key)
    products_before = catalog.version("paint/rapid_divergence/products")
    _append(prompt_copy, PLACES, MARKER)
    result = catalog.reload()
    assert result.applied and result.changed and result.set_version == catalog.set_version
    assert catalog.set_version != before and catalog.refused is None
    assert catalog.version(RAPID_PLACES.key).digest != places_before.digest
    assert catalog.version("paint/rapid_divergence/products") == products_before
    rendered = catalog.render(RAPID_PLACES.key, {"products": "伞#杯", "num": "2", "task": "雨天"})
    assert MARKER in rendered


def test_a_broken_edit_is_refused_and_the_last_good_set_serves(prompt_copy: Path) -> None:
    catalog = _catalog(prompt_copy)
    before = catalog.set_version
    pinned = catalog.pinned()
    _append(prompt_copy, PLACES, MARKER)  # a good edit in one file...
    _append(prompt_copy, "paint/rapid_divergence/concepts.txt", "$produts")  # ...a typo in another
    result = catalog.reload()
    assert not result.applied and result.set_version == before
    assert result.file is not None and result.file.endswith("concepts.txt")
    assert result.reason is not None and "unknown placeholder $produts" in result.reason
    assert catalog.refused == f"{result.file}: {result.reason}"
    # Refused whole: the good edit beside the typo is not half applied either.
    assert catalog.set_version == before and catalog.pinned() is pinned
    assert MARKER not in catalog.render(
        RAPID_PLACES.key, {"products": "伞", "num": "1", "task": "雨天"}
    )
    # The next good save clears the refusal.
    path = prompt_copy / "paint/rapid_divergence/concepts.txt"
    path.write_text(path.read_text(encoding="utf-8").replace("$produts", ""), encoding="utf-8")
    assert catalog.reload().applied and catalog.refused is None
    assert catalog.set_version != before  # the places edit is now in


def test_a_file_that_is_not_utf8_is_refused_by_name(prompt_copy: Path) -> None:
    catalog = _catalog(prompt_copy)
    (prompt_copy / PLACES).write_bytes("地点".encode("gbk"))
    result = catalog.reload()
    assert not result.applied and result.file is not None and result.file.endswith("places.txt")
    assert result.reason is not None and "UTF-8" in result.reason


@dataclass
class BlockingText(TextGenerator):
    """The demo model, except that the first call of `step` waits until released."""

    step: str
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    blocked: bool = False

    async def complete(self, request: TextRequest) -> TextAnswer:
        if request.step == self.step and not self.blocked:
            self.blocked = True
            self.entered.set()
            await self.release.wait()
        return await DemoTextGenerator().complete(request)


async def test_a_run_in_flight_finishes_on_the_version_it_started_with(prompt_copy: Path) -> None:
    catalog = _catalog(prompt_copy)
    old = catalog.set_version
    text = BlockingText("paint/rapid_divergence/products")
    repository = InMemoryExperimentRepository()
    gateway = ModelGateway(text, FakeImageGenerator(), catalog, repository, TickingClock())
    use_case = GenerateRapidDivergence(gateway)
    running = asyncio.create_task(use_case.execute(RapidDivergenceCommand("雨天通勤", 2)))
    await asyncio.wait_for(text.entered.wait(), 5)
    # While the first step waits for the model, the designer's edit goes live.
    _append(prompt_copy, PLACES, MARKER)
    assert catalog.reload().changed
    new = catalog.set_version
    text.release.set()
    await asyncio.wait_for(running, 10)
    await use_case.execute(RapidDivergenceCommand("雨天通勤", 2))

    second, first = await repository.list_generations()
    steps = [*first.text_steps, *first.image_steps]
    assert {step.prompt_set_version for step in steps} == {old}
    places = next(step for step in first.text_steps if step.name == RAPID_PLACES.key)
    assert MARKER not in places.prompt
    steps = [*second.text_steps, *second.image_steps]
    assert {step.prompt_set_version for step in steps} == {new}
    places = next(step for step in second.text_steps if step.name == RAPID_PLACES.key)
    assert MARKER in places.prompt


def test_prompts_check_prints_every_template_rendered(
    prompt_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prompts", "check", str(prompt_copy)]) == 0
    out = capsys.readouterr().out
    for spec in TEXT_STEPS:
        assert f"== {spec.key}.txt (" in out
    assert "$" not in out.replace("$$", "")
    assert "为独居老人设计一件帮助按时吃药的日常用品" in out  # a sample input, rendered in
    assert f"version {_catalog(prompt_copy).set_version}" in out


def test_prompts_check_exits_1_naming_file_and_reason(
    prompt_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _append(prompt_copy, PLACES, "$placs")
    assert main(["prompts", "check", str(prompt_copy)]) == 1
    err = capsys.readouterr().err
    assert "places.txt: unknown placeholder $placs" in err
    # Without DIR the configured set is checked.
    monkeypatch.setenv("INSPILOT_PROMPTS_DIR", str(prompt_copy))
    assert main(["prompts", "check"]) == 1
    assert "places.txt" in capsys.readouterr().err
    assert main(["prompts", "check", str(prompt_copy / "nowhere")]) == 1
    assert "prompts directory does not exist" in capsys.readouterr().err
