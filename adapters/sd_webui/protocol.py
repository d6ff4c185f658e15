"""The AUTOMATIC1111 txt2img wire format: the request body and a strict reading of the reply."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

import pybase64

from application.ports import GeneratedImage, ImageRequest
from domain.errors import ModelAnswerInvalid
from domain.images import EncodedImage

TXT2IMG_PATH = "/sdapi/v1/txt2img"
# Part of the API router (present with --nowebui too), answers while a render runs and
# holds no lock, unlike /sdapi/v1/options which serialises the whole settings object.
PROBE_PATH = "/sdapi/v1/progress?skip_current_image=true"
INTERRUPT_PATH = "/sdapi/v1/interrupt"

_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]+\]\s*$")
_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")


def build_payload(request: ImageRequest, seed: int) -> dict[str, Any]:
    """The txt2img body; `extra` wins, except that override_settings dicts are merged."""
    payload: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "width": request.width,
        "height": request.height,
        "steps": request.steps,
        "cfg_scale": request.cfg_scale,
        "sampler_name": request.sampler_name,
        "styles": list(request.styles),
        "seed": seed,
        "denoising_strength": request.denoising_strength,
        "batch_size": 1,
        "n_iter": 1,
        "override_settings": {},
        # Restoring would reload the previous checkpoint after every job: seconds lost.
        "override_settings_restore_afterwards": False,
    }
    if request.checkpoint:
        payload["override_settings"]["sd_model_checkpoint"] = request.checkpoint
    extra = dict(request.extra)
    overrides = extra.pop("override_settings", None)
    if isinstance(overrides, dict):
        payload["override_settings"].update(overrides)
    payload.update(extra)
    return payload


def same_model(requested: str, ran: str) -> bool:
    """Loose checkpoint equality: folder, extension and ' [hash]' suffix do not count."""
    return _model_key(requested) == _model_key(ran)


def _model_key(name: str) -> str:
    name = _HASH_SUFFIX.sub("", name.strip())
    name = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    for extension in _EXTENSIONS:
        if name.endswith(extension):
            return name[: -len(extension)]
    return name


def parse_reply(
    body: bytes, *, instance: str, seed: int, checkpoint: str | None, label: str = ""
) -> GeneratedImage:
    """The first image of a 200 reply, or ModelAnswerInvalid: never an empty picture.

    Errors name the instance by `label` ("SD instance 2") when given: they reach clients,
    which must not learn internal addresses; the record keeps `instance`, the URL."""
    who = label or instance
    try:
        reply = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelAnswerInvalid(f"{who} answered txt2img with non-JSON") from exc
    if not isinstance(reply, dict):
        raise ModelAnswerInvalid(f"{who} answered txt2img with a non-object")
    images = reply.get("images")
    if not isinstance(images, list) or not images or not isinstance(images[0], str):
        raise ModelAnswerInvalid(f"{who} answered txt2img without an image")
    data = _decode_image(images[0], who)
    info = _parse_info(reply.get("info"))
    model = info.get("sd_model_name") if isinstance(info.get("sd_model_name"), str) else None
    if checkpoint and model and not same_model(checkpoint, model):
        raise ModelAnswerInvalid(f"{who} rendered with model {model!r} instead of {checkpoint!r}")
    seed_used = info.get("seed")
    if not isinstance(seed_used, int) or isinstance(seed_used, bool):
        seed_used = seed
    return GeneratedImage(data=data, seed=seed_used, model=model, instance=instance)


def _decode_image(encoded: str, instance: str) -> EncodedImage:
    """Decoded once, for the checks and the storage key; the text goes on to the reply."""
    # Some API-compatible forks send a data URI rather than bare base64.
    if encoded.startswith("data:"):
        encoded = encoded.partition(",")[2]
    try:
        # pybase64: SIMD, validating, and it releases the GIL: 0.2 ms for a 2.4 MB picture
        # where the standard library took 8-11 ms with the GIL held, six pictures in a row.
        data = pybase64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        data = _decode_wrapped(encoded, instance)
        # The text had line breaks or padding quirks: reply with a clean encoding.
        encoded = base64.b64encode(data).decode("ascii")
    if not data:
        raise ModelAnswerInvalid(f"{instance} sent an empty image")
    if not data.startswith(_SIGNATURES):
        raise ModelAnswerInvalid(f"{instance} sent an image that is neither PNG nor JPEG")
    return EncodedImage(data, base64_text=encoded, sha256=hashlib.sha256(data).hexdigest())


def _decode_wrapped(encoded: str, instance: str) -> bytes:
    """Base64 a fork wrapped in lines; anything else that is not base64 is refused."""
    try:
        return base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ModelAnswerInvalid(f"{instance} sent an image that is not base64") from exc


def _parse_info(raw: object) -> dict[str, Any]:
    """A1111 sends `info` as a JSON string; an unreadable one only costs us the check."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}
        if isinstance(parsed, dict):
            return parsed
    return {}


def error_detail(body: bytes, limit: int = 300) -> str:
    """The instance's own words for a failed request (FastAPI puts them in `detail`)."""
    try:
        reply = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:limit].decode("utf-8", "replace").strip()
    if isinstance(reply, dict):
        for key in ("detail", "error", "errors", "message"):
            if reply.get(key):
                return str(reply[key])[:limit]
    return str(reply)[:limit]


def progress_idle(body: bytes) -> bool:
    """Whether a /sdapi/v1/progress reply says no job runs (A1111 and Forge alike).

    A running job has a non-empty `state.job` or a positive `state.job_count`; an
    unreadable reply counts as busy, so a slot is never freed on a guess.
    """
    try:
        reply = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    state = reply.get("state") if isinstance(reply, dict) else None
    if not isinstance(state, dict):
        return False
    job_count = state.get("job_count")
    return not state.get("job") and not (isinstance(job_count, int) and job_count > 0)
