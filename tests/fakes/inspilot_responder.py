"""A fake model's answers to InsPilot's own templates: the count each asks for, in kind."""

from __future__ import annotations

import re

from tests.fakes.openai_replies import Messages, user_text

_COUNT = re.compile(r"只输出(?:选中的)?\s*(\d+)")
_OPTIONS = re.compile(r"只能从这些名字中选择：(?P<names>[^\n]+)")
_ENGLISH = re.compile(r"Stable Diffusion")


def inspilot_responder(messages: Messages) -> str:
    """Reads the prompt as a model would: how many items, and which names to choose from."""
    prompt = user_text(messages)
    options = _OPTIONS.search(prompt)
    count_match = _COUNT.search(prompt)
    count = int(count_match.group(1)) if count_match else 1
    if options:
        return "#".join(options["names"].split("#")[:count])
    if _ENGLISH.search(prompt):
        return "#".join(f"scene {i}, soft light, wide angle" for i in range(1, count + 1))
    return "#".join(f"答案{i}号" for i in range(1, count + 1))
