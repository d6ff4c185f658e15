"""The legacy envelope and the one mapping from the error taxonomy to status, code and message."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap

from domain.errors import (
    ContentRejected,
    InsPilotError,
    InvalidInput,
    ModelError,
    ModelTimeout,
    ModelUnavailable,
    NotFound,
    NotPermitted,
    StorageError,
    StorageFull,
    TooManyJobs,
)
from entrypoints.http.disconnect import ClientGone
from entrypoints.http.splice import encode_spliced

logger = logging.getLogger("inspilot.http")

CODE_OK = 0
CODE_INVALID = 1
CODE_MODEL_FAILURE = 2
CODE_INTERNAL = 3

_encoder = msgspec.json.Encoder()


def envelope(
    data: Any = None,
    *,
    success: bool = True,
    code: int = CODE_OK,
    message: str = "ok",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body = _encoder.encode({"success": success, "data": data, "code": code, "message": message})
    return Response(body, status_code=status_code, media_type=MediaType.JSON, headers=headers)


async def envelope_off_loop(data: Any) -> Response[bytes]:
    """The success envelope, encoded in a worker thread: for replies carrying pictures
    (a rapid-divergence reply is ~14 MB of base64) or whole sessions of sketches."""
    body = await asyncio.to_thread(
        encode_spliced, {"success": True, "data": data, "code": CODE_OK, "message": "ok"}
    )
    return Response(body, status_code=200, media_type=MediaType.JSON)


# First match wins, so subclasses come before their bases.
_ERROR_STATUS: tuple[tuple[type[InsPilotError], int, int], ...] = (
    # nginx's "client closed request": nobody reads it, but the access log says what happened.
    (ClientGone, 499, CODE_INVALID),
    (InvalidInput, 400, CODE_INVALID),
    (NotFound, 404, CODE_INVALID),
    (NotPermitted, 403, CODE_INVALID),
    (TooManyJobs, 429, CODE_INVALID),
    (ModelUnavailable, 503, CODE_MODEL_FAILURE),
    (ModelTimeout, 504, CODE_MODEL_FAILURE),
    (ContentRejected, 422, CODE_MODEL_FAILURE),
    (ModelError, 502, CODE_MODEL_FAILURE),
    (StorageFull, 507, CODE_INTERNAL),
    (StorageError, 503, CODE_INTERNAL),
)


def _status_and_code(exc: InsPilotError) -> tuple[int, int]:
    for kind, status, code in _ERROR_STATUS:
        if isinstance(exc, kind):
            return status, code
    # An error this table does not name is ours to fix, not the client's.
    return 500, CODE_INTERNAL


def error_code_and_message(exc: BaseException) -> tuple[int, str]:
    """The envelope's `code` and `message` for an error (a failed job reports these too)."""
    if isinstance(exc, InsPilotError):
        return _status_and_code(exc)[1], exc.message
    return CODE_INTERNAL, "internal error; see the server log"


def handle_inspilot_error(request: Request[Any, Any, Any], exc: InsPilotError) -> Response[bytes]:
    status, code = _status_and_code(exc)
    headers = None
    if isinstance(exc, ModelUnavailable) and exc.retry_after_s is not None:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    log = logger.info if status < 500 else logger.warning
    log(
        "%s %s -> %s %s: %s",
        request.method,
        request.url.path,
        status,
        type(exc).__name__,
        exc.message,
    )
    return envelope(
        success=False, code=code, message=exc.message, status_code=status, headers=headers
    )


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Unknown routes, wrong methods, oversized bodies: the envelope too, never HTML."""
    status = exc.status_code
    if status == 404:
        message = f"no route {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    elif status == 413:
        message = "body: request body is larger than INSPILOT_MAX_BODY_MB allows"
    elif isinstance(exc, ValidationException) and (named := _named_problems(exc.extra)):
        message = named
    else:
        message = str(exc.detail)
    code = CODE_INVALID if status < 500 else CODE_INTERNAL
    return envelope(
        success=False, code=code, message=message, status_code=status, headers=exc.headers
    )


def _named_problems(extra: Any) -> str | None:
    """Litestar's parameter checks as `field: rule` (its own message names neither:
    "Validation failed for GET /api/v1/export?since=x")."""
    if not isinstance(extra, list):
        return None
    named = [
        f"{problem['key']}: {problem.get('message') or 'invalid value'}"
        for problem in extra
        if isinstance(problem, dict) and problem.get("key")
    ]
    return "; ".join(named) or None


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return envelope(
        success=False,
        code=CODE_INTERNAL,
        message="internal error; see the server log",
        status_code=500,
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    InsPilotError: handle_inspilot_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}


class ErrorReply(msgspec.Struct):
    """Every refusal and failure: `success` false, `data` null, a code and a message
    naming the field and the rule (codes: 1 invalid, 2 model failure, 3 internal)."""

    success: bool
    data: None
    code: int
    message: str


def reply_schema(name: str, data: Any) -> type[msgspec.Struct]:
    """The envelope with `data` of the given type, as a named schema for the document."""
    return msgspec.defstruct(
        name, [("success", bool), ("data", data), ("code", int), ("message", str)]
    )


def documented(
    reply: Any, description: str, *errors: int, status: int = 200
) -> dict[int, ResponseSpec]:
    """Route-handler `responses`: the success reply and the error envelope per status."""
    responses = {
        status: ResponseSpec(data_container=reply, description=description, generate_examples=False)
    }
    for status in errors or (400,):
        responses[status] = ResponseSpec(
            data_container=ErrorReply, description="the error envelope", generate_examples=False
        )
    return responses
