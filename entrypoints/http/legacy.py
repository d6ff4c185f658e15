"""The legacy controller: the paths and shapes the existing front end speaks (CONTRACT.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from application.attribution import RunContexts
from application.concurrency import ByteBudget
from application.generation_run import ModelGateway
from application.use_cases.sessions import SaveSession, StartSession
from entrypoints.http.bodies import BODY, NO_BODY, JsonBody
from entrypoints.http.client import ClientView
from entrypoints.http.condition_prefix import condition_prefix
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
from entrypoints.http.participant_cookie import COOKIE_NAME, ParticipantCookies
from entrypoints.http.presenters import SessionOut, legacy_image, present_session
from entrypoints.pipelines.base import limits_of
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

    tags: Sequence[str] | None = ("legacy",)

    @post(
        "/paint/start",
        operation_id="paintStart",
        status_code=200,
        responses=documented(StartReply, "the participant's session"),
        **BODY,
    )
    async def start(
        self,
        request: Request[Any, Any, Any],
        start_session: NamedDependency[StartSession],
        client_view: NamedDependency[ClientView],
        participant_cookies: NamedDependency[ParticipantCookies],
        data: JSONBody[JsonBody[StartBody]] = NO_BODY,
    ) -> Response[bytes]:
        """The participant's session, created on first call; sets the participant cookie."""
        command = replace(
            await data.decode(start_command),
            address=client_view.address(request.scope),
            prefix=condition_prefix(request.scope),
        )
        experiment = await start_session.execute(command)
        if experiment.has_schemes:
            # A returning participant's sketches can weigh tens of MB.
            response = await envelope_off_loop(present_session(experiment))
        else:
            response = envelope(present_session(experiment))
        secure = client_view.is_https(request.scope)
        response.set_cookie(participant_cookies.cookie(experiment.username, secure=secure))
        return response

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
        request: Request[Any, Any, Any],
        save_session: NamedDependency[SaveSession],
        client_view: NamedDependency[ClientView],
        settings: NamedDependency[Settings],
        saving: NamedDependency[ByteBudget],
        data: JSONBody[JsonBody[SaveBody]] = NO_BODY,
    ) -> Response[bytes]:
        """Save the whole session of a started participant; 404 for an unknown one."""
        # Decoded and stored, a session costs several times its body: saves beyond
        # INSPILOT_MAX_SAVING_MB wait here holding only their body.
        async with saving.hold(len(data.raw)):
            command = await data.decode(lambda body: save_command(body, settings.max_task_chars))
            address = client_view.address(request.scope)
            await save_session.execute(replace(command, address=address))
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
        gateway: NamedDependency[ModelGateway],
        run_contexts: NamedDependency[RunContexts],
        client_view: NamedDependency[ClientView],
        participant_cookies: NamedDependency[ParticipantCookies],
        settings: NamedDependency[Settings],
        data: JSONBody[JsonBody[GenerateBody]] = NO_BODY,
    ) -> Response[bytes]:
        """Run one of the stimulus pipelines (`type`) of the paint app (`appid` 0).

        The run belongs to the participant the request names, else the one its cookie,
        sketches or address name (decided before it runs), and runs in their condition.
        A client that disconnects cancels the run: its images free their slots at once.
        """
        limits = limits_of(settings)
        parsed = await data.decode(lambda body: generate_command(body, limits))
        address = client_view.address(request.scope) if settings.attribute_by_address else None
        context = await run_contexts.for_request(
            username=parsed.username,
            cookie=participant_cookies.participant(request.cookies.get(COOKIE_NAME)),
            evidence=parsed.evidence.with_address(address),
            prefix=condition_prefix(request.scope),
        )
        use_case = parsed.entry.use_case(gateway.bound(context))
        result = await unless_disconnected(request, use_case.execute(parsed.command))
        reply = parsed.entry.present(result, legacy_image)
        return await envelope_off_loop(reply)
