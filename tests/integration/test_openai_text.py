"""The OpenAI / Azure text adapter against a fake server speaking real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import socket
import sys
import types
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from PIL import Image

from adapters.demo_images import render_png
from adapters.openai_text import ChatCompletionsTextGenerator, Policy
from adapters.vision_images import fit_for_vision
from application.ports import TextRequest
from domain.errors import (
    ContentRejected,
    ModelAnswerInvalid,
    ModelError,
    ModelTimeout,
    ModelUnavailable,
)
from tests.fakes.fake_clock import FakeClock
from tests.fakes.openai_server import FakeOpenAIServer, Fault

KEY = "sk-test-0123456789"
TEXT, VISION = "gpt-text", "gpt-vision"
PRODUCTS = TextRequest(step="rapid_divergence/products", prompt="请给出4个产品", expected_count=4)
PNG = "data:image/png;base64,iVBORw0KGgo="
FAST: Policy = {
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.2,
    "step_deadline_s": 5.0,
    "cooldown_base_s": 0.5,
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY, deployments={TEXT, VISION}) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeOpenAIServer) -> None:
    fake.reset()


def openai_at(fake: FakeOpenAIServer, **policy: Any) -> ChatCompletionsTextGenerator:
    return ChatCompletionsTextGenerator.for_openai(
        base_url=fake.openai_base_url,
        api_key=KEY,
        model=TEXT,
        vision_model=VISION,
        **{**FAST, **policy},
    )


def clocked(
    generator: ChatCompletionsTextGenerator, clock: FakeClock
) -> ChatCompletionsTextGenerator:
    """The same endpoint and policy on a fake clock: cooldowns take no real time."""
    return ChatCompletionsTextGenerator(generator.endpoints, clock=clock, sleep=clock.sleep, **FAST)


def azure_at(fake: FakeOpenAIServer, **policy: Any) -> ChatCompletionsTextGenerator:
    return ChatCompletionsTextGenerator.for_azure(
        endpoint=fake.azure_endpoint,
        api_version="2024-10-21",
        deployment=TEXT,
        vision_deployment=VISION,
        api_key=KEY,
        **{**FAST, **policy},
    )


@asynccontextmanager
async def running(
    generator: ChatCompletionsTextGenerator,
) -> AsyncIterator[ChatCompletionsTextGenerator]:
    await generator.start()
    try:
        yield generator
    finally:
        await generator.close()


async def test_openai_compatible_happy_path(fake: FakeOpenAIServer) -> None:
    async with running(openai_at(fake)) as generator:
        answer = await generator.complete(PRODUCTS)
    assert answer.text == "项目1#项目2#项目3#项目4"
    assert (answer.model, answer.endpoint) == (TEXT, "openai")
    [seen] = fake.requests
    assert (seen.flavor, seen.path, seen.model, seen.credential) == (
        "openai",
        "/v1/chat/completions",
        TEXT,
        KEY,
    )
    assert seen.messages[-1] == {"role": "user", "content": PRODUCTS.prompt}


async def test_azure_happy_path(fake: FakeOpenAIServer) -> None:
    async with running(azure_at(fake)) as generator:
        answer = await generator.complete(PRODUCTS)
    assert answer.text.count("#") == 3
    [seen] = fake.requests
    assert (seen.flavor, seen.deployment, seen.api_version, seen.authorized) == (
        "azure",
        TEXT,
        "2024-10-21",
        True,
    )


async def test_vision_step_goes_to_the_vision_deployment_with_its_images(
    fake: FakeOpenAIServer,
) -> None:
    other = "data:image/jpeg;base64,/9j/4AAQ"
    request = TextRequest(
        step="deep_divergence/name", prompt="这是什么产品？", expected_count=1, images=(PNG, other)
    )
    async with running(azure_at(fake)) as generator:
        await generator.complete(request)
    [seen] = fake.requests
    assert seen.deployment == VISION
    assert seen.image_urls == (PNG, other)


async def test_large_sketches_are_scaled_to_the_models_size_and_the_answer_says_so(
    fake: FakeOpenAIServer,
) -> None:
    big = render_png(2400, 1350, 4)
    wide = "data:image/png;base64," + base64.b64encode(big).decode()
    small = "data:image/png;base64," + base64.b64encode(render_png(640, 360, 5)).decode()
    request = TextRequest(
        step="deep_divergence/name", prompt="这是什么产品？", expected_count=1, images=(wide, small)
    )
    async with running(azure_at(fake)) as generator:
        answer = await generator.complete(request)
    [seen] = fake.requests
    sent = base64.b64decode(seen.image_urls[0].partition(",")[2])
    with Image.open(io.BytesIO(sent)) as picture:
        assert picture.size == (1024, 576) and picture.format == "JPEG"
    assert seen.image_urls[0].startswith("data:image/jpeg;base64,")
    assert seen.image_urls[1] == small  # small enough: sent as it came
    assert answer.image_sizes == ("2400x1350 -> 1024x576 jpeg", "640x360")


def test_a_transparent_canvas_is_sent_on_white() -> None:
    canvas = Image.new("RGBA", (2000, 1000), (0, 0, 0, 0))  # transparent black, as exported
    canvas.paste((20, 20, 20, 255), (900, 400, 1100, 600))  # one dark stroke in the middle
    raw = io.BytesIO()
    canvas.save(raw, format="PNG")
    fitted = fit_for_vision("data:image/png;base64," + base64.b64encode(raw.getvalue()).decode())
    with Image.open(io.BytesIO(base64.b64decode(fitted.uri.partition(",")[2]))) as sent:
        assert sent.size == (1024, 512)
        corner, middle = sent.getpixel((5, 5)), sent.getpixel((512, 256))
    assert min(corner) > 245 and max(middle) < 40  # white ground, the stroke kept


async def test_the_size_limit_is_a_setting(fake: FakeOpenAIServer) -> None:
    wide = "data:image/png;base64," + base64.b64encode(render_png(1000, 500, 6)).decode()
    request = TextRequest(step="deep_divergence/name", prompt="p", expected_count=1, images=(wide,))
    async with running(azure_at(fake, vision_max_side=512)) as generator:
        answer = await generator.complete(request)
    assert answer.image_sizes == ("1000x500 -> 512x256 jpeg",)


async def test_options_are_repeated_to_the_model(fake: FakeOpenAIServer) -> None:
    request = TextRequest(
        step="convergence/select",
        prompt="选出1个",
        expected_count=1,
        options=("折叠雨伞", "智能水杯"),
    )
    async with running(openai_at(fake)) as generator:
        await generator.complete(request)
    system = fake.requests[0].messages[0]
    assert system["role"] == "system" and "- 折叠雨伞\n- 智能水杯" in system["content"]


async def test_rate_limit_cools_down_for_retry_after_then_a_probe_brings_it_back(
    fake: FakeOpenAIServer,
) -> None:
    fake.enqueue(Fault.rate_limited(retry_after_s=1.0))
    clock = FakeClock()
    async with running(clocked(azure_at(fake), clock)) as generator:
        answer = await generator.complete(PRODUCTS)
    # The step that met the 429 waits out the cooldown (the Retry-After, longer than the
    # 0.5 s base here); then one probe, then the step's own call.
    assert answer.text and [seen.max_tokens for seen in fake.requests] == [None, 1, None]
    assert clock.waits == [pytest.approx(1.0)]


async def test_retry_after_ms_is_honoured(fake: FakeOpenAIServer) -> None:
    fake.enqueue(Fault.rate_limited(retry_after_s=0.6, millis=True))
    clock = FakeClock()
    async with running(clocked(openai_at(fake), clock)) as generator:
        await generator.complete(PRODUCTS)
    assert clock.waits == [pytest.approx(0.6)]
    assert [seen.max_tokens for seen in fake.requests] == [None, 1, None]


async def test_rate_limit_longer_than_the_deadline_fails_at_once(fake: FakeOpenAIServer) -> None:
    fake.enqueue(Fault.rate_limited(retry_after_s=30))
    async with running(azure_at(fake, step_deadline_s=2.0)) as generator:
        with pytest.raises(ModelUnavailable, match="asked to wait 30s") as caught:
            await generator.complete(PRODUCTS)
    # Decided at once, without waiting out the 2 s deadline: one call, and the full 30 s
    # still ahead (28 s would mean it had waited).
    assert "cools down for 30s more, past the step's deadline of 2s" in str(caught.value)
    assert caught.value.retry_after_s == pytest.approx(30, abs=1)
    assert fake.request_count == 1


async def test_server_error_then_success(fake: FakeOpenAIServer) -> None:
    fake.enqueue(Fault.server_error(500), Fault.server_error(503))
    async with running(openai_at(fake)) as generator:
        answer = await generator.complete(PRODUCTS)
    assert answer.text and fake.request_count == 3


@pytest.mark.slow  # backs off and cools down within a 1.5 s deadline
async def test_server_error_forever_is_unavailable_within_the_deadline(
    fake: FakeOpenAIServer,
) -> None:
    fake.always = Fault.server_error(500)
    async with running(azure_at(fake, step_deadline_s=1.5)) as generator:
        with pytest.raises(ModelUnavailable) as caught:
            await generator.complete(PRODUCTS)
    assert fake.request_count >= 2
    message = str(caught.value)
    # It gives up as soon as the cooldown would outlast the deadline, not after it.
    assert "past the step's deadline of 1.5s" in message
    assert PRODUCTS.step in message and TEXT in message and "HTTP 500" in message
    assert KEY not in message


@pytest.mark.slow  # waits out a 1 s step deadline
async def test_hang_is_a_timeout_at_the_deadline(fake: FakeOpenAIServer) -> None:
    fake.enqueue(Fault.hang())
    async with running(openai_at(fake, step_deadline_s=1.0)) as generator:
        with pytest.raises(ModelTimeout) as caught:
            await generator.complete(PRODUCTS)
    # One call, given the whole deadline (no earlier give-up, no second try).
    assert fake.request_count == 1
    assert "no answer before the step's deadline of 1s ran out" in str(caught.value)
    assert PRODUCTS.step in str(caught.value)


@pytest.mark.slow  # waits out a 1 s step deadline
async def test_outage_then_deadline_is_reported_as_the_outage(fake: FakeOpenAIServer) -> None:
    fake.enqueue(Fault.server_error(502), Fault.hang())
    async with running(openai_at(fake, step_deadline_s=1.0)) as generator:
        with pytest.raises(ModelUnavailable, match=r"HTTP 502.*deadline of 1s ran out"):
            await generator.complete(PRODUCTS)


@pytest.mark.slow  # waits out the step's deadline in the queue
async def test_waiting_for_a_slot_past_the_deadline_says_so(fake: FakeOpenAIServer) -> None:
    async with running(openai_at(fake, concurrency=1, step_deadline_s=0.5)) as generator:
        # Holding the only slot here, not with a hung call, keeps the race out of the test.
        [endpoint] = generator.endpoints
        endpoint.in_flight += 1
        try:
            with pytest.raises(ModelTimeout, match="one of 1 request slots"):
                await generator.complete(PRODUCTS)
        finally:
            endpoint.in_flight -= 1
    assert fake.request_count == 0


async def test_content_filter_refusal_is_rejected_and_not_retried(
    fake: FakeOpenAIServer,
) -> None:
    fake.enqueue(Fault.content_filter_400())
    async with running(azure_at(fake)) as generator:
        with pytest.raises(ContentRejected, match="violence"):
            await generator.complete(PRODUCTS)
    assert fake.request_count == 1


async def test_filtered_answer_is_rejected(fake: FakeOpenAIServer) -> None:
    fake.enqueue(Fault.content_filter_finish())
    async with running(azure_at(fake)) as generator:
        with pytest.raises(ContentRejected):
            await generator.complete(PRODUCTS)


async def test_empty_answer_is_invalid_never_blank(fake: FakeOpenAIServer) -> None:
    fake.enqueue(Fault.empty_content())
    async with running(openai_at(fake)) as generator:
        with pytest.raises(ModelAnswerInvalid, match="empty"):
            await generator.complete(PRODUCTS)


@pytest.mark.parametrize(
    "build",
    [
        lambda fake: ChatCompletionsTextGenerator.for_openai(
            base_url=fake.openai_base_url, api_key="sk-wrong", model=TEXT, **FAST
        ),
        lambda fake: ChatCompletionsTextGenerator.for_azure(
            endpoint=fake.azure_endpoint, api_version="v", deployment="nope", api_key=KEY, **FAST
        ),
    ],
    ids=["wrong-key-401", "unknown-deployment-404"],
)
async def test_configuration_errors_are_not_retried(
    fake: FakeOpenAIServer, build: Callable[[FakeOpenAIServer], ChatCompletionsTextGenerator]
) -> None:
    async with running(build(fake)) as generator:
        with pytest.raises(ModelUnavailable, match="configuration problem") as caught:
            await generator.complete(PRODUCTS)
    assert fake.request_count == 1
    assert "sk-wrong" not in str(caught.value)


async def test_other_client_errors_are_model_errors(fake: FakeOpenAIServer) -> None:
    fake.enqueue(Fault.error(400, "context_length_exceeded", "too long"))
    async with running(openai_at(fake)) as generator:
        with pytest.raises(ModelError, match="HTTP 400: too long"):
            await generator.complete(PRODUCTS)
    assert fake.request_count == 1


@pytest.mark.slow  # twenty calls of 0.15 s, three at a time
async def test_concurrency_cap_is_respected(fake: FakeOpenAIServer) -> None:
    fake.latency_s = 0.15
    async with running(openai_at(fake, concurrency=3)) as generator:
        answers = await asyncio.gather(*(generator.complete(PRODUCTS) for _ in range(20)))
    assert len(answers) == 20 and fake.request_count == 20
    assert 2 <= fake.max_in_flight <= 3


@pytest.mark.slow  # backs off until a 1 s step deadline
async def test_connection_refused_is_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    # A bound socket that never listens: the port stays ours and refuses connections.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        generator = ChatCompletionsTextGenerator.for_openai(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key=None,
            model=TEXT,
            **{**FAST, "step_deadline_s": 1.0},
        )
        with caplog.at_level(logging.WARNING):
            async with running(generator):
                with pytest.raises(ModelUnavailable, match="cannot connect") as refused:
                    await generator.complete(PRODUCTS)
    # The client's message names the part and the failure, not the library's words or the
    # address; those are in the log line.
    message = str(refused.value)
    assert "ConnectError" not in message and "127.0.0.1" not in message
    assert str(port) not in message
    assert "ConnectError" in caplog.text


async def test_complete_before_start_is_a_programming_error(fake: FakeOpenAIServer) -> None:
    with pytest.raises(RuntimeError, match="start"):
        await openai_at(fake).complete(PRODUCTS)


async def test_entra_id_sends_a_bearer_token_and_closes_the_credential(
    fake: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []

    class Credential:
        async def close(self) -> None:
            closed.append(True)

    def provider_for(credential: Credential, scope: str) -> Any:
        async def token() -> str:
            return "entra-token"

        return token

    aio = types.ModuleType("azure.identity.aio")
    aio.DefaultAzureCredential = Credential  # type: ignore[attr-defined]
    aio.get_bearer_token_provider = provider_for  # type: ignore[attr-defined]
    for name in ("azure", "azure.identity"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "azure.identity.aio", aio)
    generator = ChatCompletionsTextGenerator.for_azure(
        endpoint=fake.azure_endpoint,
        api_version="2024-10-21",
        deployment=TEXT,
        use_entra_id=True,
        **FAST,
    )
    async with running(generator):
        await generator.complete(PRODUCTS)
    assert fake.requests[0].credential == "entra-token" and closed == [True]


def test_entra_id_without_azure_identity_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity.aio", None)
    with pytest.raises(ImportError, match="azure-identity"):
        ChatCompletionsTextGenerator.for_azure(
            endpoint="https://x.openai.azure.com",
            api_version="2024-10-21",
            deployment=TEXT,
            use_entra_id=True,
        )


CHOOSE = TextRequest(
    step="converge_select/choose",
    prompt="选出2个",
    expected_count=2,
    options=("甲杯", "乙伞", "丙灯"),
)


async def test_structured_choices_constrain_the_answer_to_the_options(
    fake: FakeOpenAIServer,
) -> None:
    fake.enqueue(Fault.reply('{"selected": ["丙灯", "甲杯"]}'))
    async with running(azure_at(fake, structured_choices=True)) as generator:
        answer = await generator.complete(CHOOSE)
    assert answer.text == "丙灯#甲杯"
    [seen] = fake.requests
    schema = seen.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["selected"]["items"]["enum"] == ["甲杯", "乙伞", "丙灯"]


async def test_structured_choices_off_or_without_options_send_plain_prompts(
    fake: FakeOpenAIServer,
) -> None:
    async with running(openai_at(fake, structured_choices=True)) as generator:
        await generator.complete(PRODUCTS)
    fake.enqueue(Fault.reply("乙伞#甲杯"))
    async with running(openai_at(fake)) as generator:
        answer = await generator.complete(CHOOSE)
    assert answer.text == "乙伞#甲杯"
    assert all("response_format" not in seen.body for seen in fake.requests)
