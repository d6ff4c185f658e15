"""`inspilot prompts check [DIR]`: validate a prompt set offline, as the service would.

For prompt designers before an edit goes live: every template is loaded and checked
exactly as at start-up (and as a live reload does), then printed rendered with sample
inputs so the wording can be read as the model will see it. Exit 1 names the file and
the reason of the first fault.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from adapters.filesystem_prompts import PromptSet, TemplateError, load_prompt_set
from application.steps import IMAGE_KINDS, IMAGE_POSITIVE, TEXT_STEPS

# Sample values per placeholder: plausible enough to read a rendered prompt as a whole.
SAMPLE_INPUTS: dict[str, str] = {
    "task": "为独居老人设计一件帮助按时吃药的日常用品",
    "design_task": "为独居老人设计一件帮助按时吃药的日常用品",
    "num": "3",
    "select_num": "2",
    "products": "会发光的药盒#可以说话的水杯#提醒手环",
    "product": "会发光的药盒",
    "places": "清晨的厨房#社区诊所的候诊区#卧室床头",
    "design_texts": "药盒盖子打开时亮灯；家人能在手机上看到是否吃过药",
    "schemes": "方案1：会发光的药盒\n方案2：可以说话的水杯",
    "names": "光语药盒#水杯管家",
    "scheme": "药盒盖子打开时亮灯；家人能在手机上看到是否吃过药",
    "functions": "开盖亮灯提醒#服药记录同步到家人手机",
    "prompt": "a glowing pill box on a kitchen table, morning light",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check", help="validate a prompt set and print each template rendered with samples"
    )
    check.add_argument(
        "directory", nargs="?", default=None, help="the set (default: INSPILOT_PROMPTS_DIR)"
    )


def _show(prompt_set: PromptSet, out: TextIO) -> None:
    for spec in TEXT_STEPS:
        version = prompt_set.version(spec.key)
        variables = {name: SAMPLE_INPUTS.get(name, f"<{name}>") for name in spec.allowed}
        out.write(f"== {version.path} ({version.digest})\n")
        out.write(prompt_set.render(spec.key, variables) + "\n\n")
    for kind in IMAGE_KINDS:
        template = prompt_set.image_template(kind)
        request = template.request_for(SAMPLE_INPUTS["prompt"])
        digest = template.version.digest if template.version else ""
        out.write(f"== {kind} ({digest})\n")
        out.write(f"positive: {request.prompt}\nnegative: {request.negative_prompt}\n")
        out.write(f"options: {json.dumps(template.options, ensure_ascii=False)}\n\n")


def check(directory: str, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """0 when the set would serve, 1 (with 'file: reason' on err) when it would be refused."""
    out, err = out or sys.stdout, err or sys.stderr
    path = Path(directory).resolve()
    try:
        prompt_set = load_prompt_set(path, TEXT_STEPS, IMAGE_KINDS, IMAGE_POSITIVE)
    except TemplateError as exc:
        err.write(f"inspilot: prompt set refused: {exc.path}: {exc.reason}\n")
        return 1
    _show(prompt_set, out)
    count = len(TEXT_STEPS) + len(IMAGE_KINDS)
    out.write(f"prompt set {path}: {count} templates valid, version {prompt_set.set_version}\n")
    return 0
