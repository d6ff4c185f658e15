"""What goes into a chat completion and what comes out: messages, choice schema, the answer."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from openai.types.chat import (
    ChatCompletion,
    ChatCompletionContentPartParam,
    ChatCompletionMessageParam,
)

from adapters.openai_text.failures import filtered_categories
from application.ports import TextAnswer, TextRequest
from domain.errors import ContentRejected, ModelAnswerInvalid

log = logging.getLogger("inspilot.text")

_SYSTEM = (
    "Answer with exactly what the user asks for, in the format the user asks for, "
    "with no preamble, no numbering and no explanation."
)


def build_messages(request: TextRequest) -> list[ChatCompletionMessageParam]:
    """The prompt as the user's message, images as image_url parts for vision steps."""
    system = _SYSTEM
    if request.options:
        # The template lists the options already; repeating them in the system message
        # keeps the model from paraphrasing the names it must choose among.
        listed = "\n".join(f"- {option}" for option in request.options)
        system += f"\nChoose only among these, copying each exactly as written:\n{listed}"
    if not request.images:
        return [{"role": "system", "content": system}, {"role": "user", "content": request.prompt}]
    parts: list[ChatCompletionContentPartParam] = [{"type": "text", "text": request.prompt}]
    parts.extend({"type": "image_url", "image_url": {"url": uri}} for uri in request.images)
    return [{"role": "system", "content": system}, {"role": "user", "content": parts}]


def choice_schema(options: tuple[str, ...]) -> dict[str, Any]:
    """Structured output that can only name the offered options (OpenAI json_schema)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "choice",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "selected": {
                        "type": "array",
                        "items": {"type": "string", "enum": list(options)},
                    }
                },
                "required": ["selected"],
                "additionalProperties": False,
            },
        },
    }


def unwrap_choices(answer: TextAnswer) -> TextAnswer:
    """The structured answer as the `#` list the pipelines parse; plain text passes as is,
    since the parser matches names loosely anyway."""
    try:
        selected = json.loads(answer.text)["selected"]
    except (ValueError, TypeError, KeyError):
        return answer
    if not isinstance(selected, list) or not all(isinstance(item, str) for item in selected):
        return answer
    return replace(answer, text="#".join(selected))


def read_answer(completion: ChatCompletion, model: str, where: str) -> TextAnswer:
    """The stripped text; a filtered, refused or empty answer is an error, never ""."""
    if not completion.choices:
        raise ModelAnswerInvalid(f"{where}: the reply had no choices")
    choice = completion.choices[0]
    if choice.finish_reason == "content_filter":
        extra = choice.model_extra or {}
        categories = filtered_categories(extra.get("content_filter_results"))
        raise ContentRejected(f"{where}: the content filter withheld the answer{categories}")
    text = (choice.message.content or "").strip()
    if not text and choice.message.refusal:
        raise ContentRejected(f"{where}: the model refused: {choice.message.refusal[:200]}")
    if not text:
        raise ModelAnswerInvalid(
            f"{where}: the answer was empty (finish_reason {choice.finish_reason!r})"
        )
    if choice.finish_reason == "length":
        log.warning("%s: the answer was cut at the token limit", where)
    return TextAnswer(text=text, model=completion.model or model)
