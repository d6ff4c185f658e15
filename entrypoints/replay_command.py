"""`inspilot replay GENERATION_ID --out DIR`: a recorded generation, sent again, compared.

Reads the record from the store (beside a running service, as `inspilot export` does),
sends its requests again on the configured models (ReplayGeneration) and writes
`DIR/result.json` (the replayed answers), `DIR/<step id>.png` (the replayed pictures)
and `DIR/diff.json` (per step: same or different text, same or different image hash).
Nothing is written to the study's records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from application.ports import Lifecycle
from application.use_cases.replay import ReplayGeneration, ReplayResult
from domain.errors import InsPilotError, NotFound
from domain.generation import GenerationRecord
from entrypoints.command_storage import CommandStorage, command_storage, opened_repository
from entrypoints.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("generation_id", help="the record's id (as in /api/v1/generations/{id})")
    parser.add_argument("--out", required=True, type=Path, help="folder for the replay's files")


async def _load(storage: CommandStorage, generation_id: str) -> GenerationRecord:
    async with opened_repository(storage) as repository:
        record = await repository.get_generation(generation_id, with_images=True)
    if record is None:
        raise NotFound(f"generation_id: no record '{generation_id}' in the {storage.describe()}")
    return record


async def _replay(storage: CommandStorage, generation_id: str) -> ReplayResult:
    from entrypoints.container import build_container

    record = await _load(storage, generation_id)
    # Only the models: the store is read above, and jobs or the prompt watcher have no
    # part in a replay.
    container = build_container(storage.settings)
    models = [container.text_generator(), container.image_generator()]
    started: list[Any] = []
    try:
        for model in models:
            if isinstance(model, Lifecycle):
                await model.start()
            started.append(model)
        study = container.study()
        return await ReplayGeneration(models[0], models[1], study).execute(record)
    finally:
        for model in reversed(started):
            if isinstance(model, Lifecycle):
                await model.close()


def _result(result: ReplayResult) -> dict[str, Any]:
    return {
        "generation_id": result.record.id,
        "pipeline": result.record.pipeline.value,
        "condition": result.record.condition,
        "text_steps": [
            {
                "step": item.step.name,
                "attempt": item.step.attempt,
                "prompt": item.step.prompt,
                "answer": item.answer,
                "model_asked": item.request.model,
                "model": item.model,
                "endpoint": item.endpoint,
                "error": item.error,
            }
            for item in result.texts
        ],
        "image_steps": [
            {
                "step_id": item.step.id,
                "kind": item.step.name,
                "prompt": item.request.prompt,
                "negative_prompt": item.request.negative_prompt,
                "options": item.request.options(),
                "file": f"{item.step.id}.png" if item.image is not None else None,
                "sha256": item.sha256,
                "model": item.model,
                "instance": item.instance,
                "error": item.error,
            }
            for item in result.images
        ],
    }


def _diff(result: ReplayResult) -> dict[str, Any]:
    texts = [
        {
            "kind": "text",
            "step": item.step.name,
            "attempt": item.step.attempt,
            "same": item.same,
            "recorded": item.step.raw_answer,
            "replayed": item.answer,
        }
        for item in result.texts
    ]
    images = [
        {
            "kind": "image",
            "step": item.step.name,
            "step_id": item.step.id,
            "same": item.same,
            "recorded_sha256": item.recorded_sha256,
            "replayed_sha256": item.sha256,
        }
        for item in result.images
    ]
    return {
        "generation_id": result.record.id,
        "same": result.same,
        "changed": result.changed,
        "steps": texts + images,
    }


def _write(result: ReplayResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for item in result.images:
        if item.image is not None:
            (out / f"{item.step.id}.png").write_bytes(item.image)
    for name, content in (("result.json", _result(result)), ("diff.json", _diff(result))):
        text = json.dumps(content, ensure_ascii=False, indent=2)
        (out / name).write_text(text + "\n", encoding="utf-8")


def replay(args: argparse.Namespace, settings: Settings, stream: TextIO | None = None) -> int:
    """0 when the replay ran and its files are written (the diff says what changed)."""
    stream = stream or sys.stderr
    storage = command_storage(settings)
    try:
        storage.require_data()
        print(f"inspilot: data: {storage.describe()}", file=stream)
        result = asyncio.run(_replay(storage, args.generation_id))
    except InsPilotError as exc:
        print(f"inspilot: replay failed: {exc.message}", file=stream)
        return 1
    _write(result, args.out)
    steps = len(result.texts) + len(result.images)
    verdict = "all the same" if result.same else "changed: " + ", ".join(result.changed)
    print(f"replayed {steps} steps of {result.record.id} into {args.out}: {verdict}", file=stream)
    return 0
