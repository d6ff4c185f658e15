"""The legacy controller: the paths and shapes the existing front end speaks (CONTRACT.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import State

from entrypoints.http.disconnect import unless_disconnected
from entrypoints.http.envelope import envelope, envelope_off_loop
from entrypoints.http.legacy_requests import (
    GenerateRequest,
    Limits,
    generate_command,
    save_command,
    start_command,
)
from entrypoints.http.presenters import present_creatives, present_session

AnyRequest = Request[Any, Any, State]
T = TypeVar("T")
LARGE_BODY_BYTES = 1_000_000


def _container(request: AnyRequest) -> Any:
    return request.app.state.container


async def _decoded(decode: Callable[..., T], body: bytes, *args: Any) -> T:
    """Bodies past about 1 MB (whole sessions, sketches) are decoded in a worker thread."""
    if len(body) > LARGE_BODY_BYTES:
        return await asyncio.to_thread(decode, body, *args)
    return decode(body, *args)


def _limits(request: AnyRequest) -> Limits:
    config = _container(request).config
    return Limits(max_num=config.max_num(), max_image_bytes=config.max_image_mb() * 1024 * 1024)


@get(
    "/ping",
    operation_id="pingGet",
    media_type=MediaType.TEXT,
    tags=["legacy"],
    sync_to_thread=False,
)
def ping_get() -> str:
    """Liveness: plain text `pong`, no envelope."""
    return "pong"


@post(
    "/ping",
    operation_id="pingPost",
    media_type=MediaType.TEXT,
    status_code=200,
    tags=["legacy"],
    sync_to_thread=False,
)
def ping_post() -> str:
    """Liveness over POST, as the front end may call it."""
    return "pong"


class LegacyController(Controller):
    """Handlers decode, call one use case and wrap the result; errors are mapped in one place."""

    tags: ClassVar[list[str]] = ["legacy"]

    @post("/paint/start", operation_id="paintStart", status_code=200)
    async def start(self, request: AnyRequest) -> Response[bytes]:
        """The participant's session, created on first call. Body: `{"username": str}`."""
        command = start_command(await request.body())
        experiment = await _container(request).start_session().execute(command)
        if experiment.has_schemes:
            # A returning participant's sketches can weigh tens of MB.
            return await envelope_off_loop(present_session(experiment))
        return envelope(present_session(experiment))

    @post("/paint/save", operation_id="paintSave", status_code=200)
    async def save(self, request: AnyRequest) -> Response[bytes]:
        """Save the whole session of a started participant; 404 for an unknown one."""
        command = await _decoded(save_command, await request.body())
        await _container(request).save_session().execute(command)
        return envelope(None)

    @post("/generate", operation_id="generate", status_code=200)
    async def generate(self, request: AnyRequest) -> Response[bytes]:
        """Run one of the four stimulus pipelines (`type` 0-3) of the paint app (`appid` 0).

        A client that disconnects cancels the run: its images free their slots at once.
        """
        parsed = await _decoded(generate_command, await request.body(), _limits(request))
        data = await unless_disconnected(request, _run(_container(request), parsed))
        return await envelope_off_loop(data)


async def _run(container: Any, parsed: GenerateRequest) -> dict[str, Any]:
    if parsed.kind == 0:
        rapid = await container.rapid_divergence().execute(parsed.command)
        return {"count": len(rapid.creatives), "result": present_creatives(rapid.creatives)}
    if parsed.kind == 1:
        deep = await container.deep_divergence().execute(parsed.command)
        return {
            "schemeId": deep.scheme_id,
            "count": len(deep.creatives),
            "result": present_creatives(deep.creatives),
        }
    if parsed.kind == 2:
        selection = await container.converge_select().execute(parsed.command)
        return {"names": list(selection.names), "selected": list(selection.selected)}
    expansion = await container.converge_expand().execute(parsed.command)
    return {"result": present_creatives(expansion.creatives)}
