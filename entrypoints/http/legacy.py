"""The legacy controller: the paths and shapes the existing front end speaks (CONTRACT.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from application.use_cases.sessions import SaveSession, StartSession
from entrypoints.http.bodies import BODY, NO_BODY, JsonBody
from entrypoints.http.dependencies import PipelineUseCases
from entrypoints.http.disconnect import unless_disconnected
from entrypoints.http.envelope import documented, envelope, envelope_off_loop, reply_schema
from entrypoints.http.free_space import STORES
from entrypoints.http.legacy_requests import (
    GenerateBody,
    GenerateReply,
    SaveBody,
    StartBody,
    generate_command,
    save_command,
    start_command,
)
from entrypoints.http.presenters import SessionOut, legacy_image, present_session
from entrypoints.pipelines.base import Limits
from entrypoints.settings import Settings

StartReply = reply_schema("StartReply", SessionOut)
SaveReply = reply_schema("SaveReply", None)


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
    """Handlers decode, call one use case and wrap the result; errors are mapped in one place.

    The roster is checked by the use cases (a username outside it is refused before
    anything is stored or run); request ids come from the request middleware.
    """

    tags: ClassVar[list[str]] = ["legacy"]

    @post(
        "/paint/start",
        operation_id="paintStart",
        status_code=200,
        responses=documented(StartReply, "the participant's session"),
        **BODY,
    )
    async def start(
        self,
        start_session: NamedDependency[StartSession],
        data: JSONBody[JsonBody[StartBody]] = NO_BODY,
    ) -> Response[bytes]:
        """The participant's session, created on first call."""
        command = await data.decode(start_command)
        experiment = await start_session.execute(command)
        if experiment.has_schemes:
            # A returning participant's sketches can weigh tens of MB.
            return await envelope_off_loop(present_session(experiment))
        return envelope(present_session(experiment))

    @post(
        "/paint/save",
        operation_id="paintSave",
        status_code=200,
        responses=documented(SaveReply, "saved; `data` is null", 400, 404, 507),
        opt=STORES,
        **BODY,
    )
    async def save(
        self,
        save_session: NamedDependency[SaveSession],
        data: JSONBody[JsonBody[SaveBody]] = NO_BODY,
    ) -> Response[bytes]:
        """Save the whole session of a started participant; 404 for an unknown one."""
        await save_session.execute(await data.decode(save_command))
        return envelope(None)

    @post(
        "/generate",
        operation_id="generate",
        status_code=200,
        responses=documented(
            GenerateReply, "the stimuli; `data` depends on `type`", 400, 422, 502, 503, 504, 507
        ),
        opt=STORES,
        **BODY,
    )
    async def generate(
        self,
        request: Request[Any, Any, Any],
        pipelines: NamedDependency[PipelineUseCases],
        settings: NamedDependency[Settings],
        data: JSONBody[JsonBody[GenerateBody]] = NO_BODY,
    ) -> Response[bytes]:
        """Run one of the stimulus pipelines (`type`) of the paint app (`appid` 0).

        A client that disconnects cancels the run: its images free their slots at once.
        """
        limits = Limits.of(settings)
        parsed = await data.decode(lambda body: generate_command(body, limits))
        use_case = pipelines[parsed.entry.pipeline.value]
        result = await unless_disconnected(request, use_case.execute(parsed.command))
        reply = parsed.entry.present(result, legacy_image)
        return await envelope_off_loop(reply)
