"""Pictures cross the service as they came: decoded once, never encoded again."""

from __future__ import annotations

import base64
import hashlib
import json

import msgspec
import pytest

from adapters.demo_images import render_png
from adapters.sd_webui.protocol import parse_reply, progress_idle
from domain.creatives import Item, ItemType
from domain.errors import ModelAnswerInvalid
from domain.images import EncodedImage, image_base64, image_sha256
from entrypoints.http.presenters import legacy_image
from entrypoints.http.splice import TrustedJsonText, encode_spliced
from entrypoints.pipelines.base import present_item

PNG = render_png(32, 16, 4)


def test_the_reply_carries_the_instances_base64_text_not_a_new_encoding() -> None:
    # A sentinel that is not the encoding of the bytes: only the kept text can produce it.
    image = EncodedImage(PNG, base64_text="KEPT-AS-RECEIVED")
    item = present_item(Item(ItemType.ABSTRACT_IMAGE, image=image), legacy_image)
    assert json.loads(encode_spliced({"item": item}))["item"]["image"] == "KEPT-AS-RECEIVED"


def test_spliced_replies_equal_the_ordinary_encoding() -> None:
    pictures = [base64.b64encode(render_png(40, 20, seed)).decode() for seed in range(3)]
    plain = {"data": [{"image": p, "text": '概念"引号"', "n": i} for i, p in enumerate(pictures)]}
    trusted = {
        "data": [
            {"image": TrustedJsonText(p), "text": '概念"引号"', "n": i}
            for i, p in enumerate(pictures)
        ]
    }
    assert encode_spliced(trusted) == msgspec.json.encode(plain)


def test_text_that_would_need_escaping_is_escaped_after_all() -> None:
    sneaky = TrustedJsonText('not "base64"\\ at all')
    assert json.loads(encode_spliced({"x": sneaky})) == {"x": 'not "base64"\\ at all'}


def test_parse_reply_decodes_once_and_keeps_text_and_digest() -> None:
    text = base64.b64encode(PNG).decode()
    body = json.dumps({"images": [text], "info": json.dumps({"seed": 7})}).encode()
    image = parse_reply(body, instance="sd1", seed=1, checkpoint=None)
    assert isinstance(image.data, EncodedImage)
    assert image.data == PNG and image.seed == 7
    assert image_base64(image.data) is image.data.base64 and image.data.base64 == text
    assert image_sha256(image.data) == hashlib.sha256(PNG).hexdigest()


def test_plain_bytes_are_encoded_and_hashed_on_demand() -> None:
    assert image_base64(PNG) == base64.b64encode(PNG).decode()
    assert image_sha256(PNG) == hashlib.sha256(PNG).hexdigest()
    lazy = EncodedImage(PNG)
    assert lazy.base64 == base64.b64encode(PNG).decode() and bytes(lazy) == PNG


def test_progress_tells_idle_from_busy_and_doubts_what_it_cannot_read() -> None:
    idle = {"progress": 0, "state": {"job": "", "job_count": 0}}
    busy = {"progress": 0.4, "state": {"job": "txt2img", "job_count": 1}}
    queued = {"progress": 0, "state": {"job": "", "job_count": 2}}
    assert progress_idle(json.dumps(idle).encode())
    assert not progress_idle(json.dumps(busy).encode())
    assert not progress_idle(json.dumps(queued).encode())
    assert not progress_idle(b"<html>gateway error</html>")


def test_a_wrapped_base64_from_a_fork_is_accepted_and_sent_on_clean() -> None:
    text = base64.b64encode(PNG).decode()
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    body = json.dumps({"images": [wrapped]}).encode()
    image = parse_reply(body, instance="sd1", seed=1, checkpoint=None)
    assert image.data == PNG and image.data.base64 == text


def test_text_that_is_not_base64_is_an_invalid_answer_never_a_picture() -> None:
    body = json.dumps({"images": ["iVBORw0K***not base64***"]}).encode()
    with pytest.raises(ModelAnswerInvalid, match="not base64"):
        parse_reply(body, instance="sd1", seed=1, checkpoint=None)
