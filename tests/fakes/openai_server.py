"""A fake OpenAI and Azure OpenAI chat-completions server on loopback, with fault knobs."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from tests.fakes.openai_replies import (
    Fault,
    Messages,
    RecordedRequest,
    Responder,
    completion,
    counting_responder,
    error_body,
    image_urls,
)

__all__ = ["FakeOpenAIServer", "Fault", "Messages", "RecordedRequest", "counting_responder"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_AZURE_PATH = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/chat/completions$")
_OPENAI_PATH = "/v1/chat/completions"
_NOT_FOUND = error_body("404", "Resource not found")


class FakeOpenAIServer:
    """Speaks real HTTP on 127.0.0.1 from a uvicorn thread; knobs may change while it runs.

    A thread (not the test's event loop) serves, so sync tests, async tests on any loop
    and benchmarks can all use one instance. Use as a context manager or start()/stop().
    """

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        deployments: Collection[str] | None = None,
        latency_s: float = 0.0,
        responder: Responder = counting_responder,
    ) -> None:
        self.api_key = api_key
        self.deployments = set(deployments) if deployments is not None else None
        self.latency_s = latency_s
        self.responder = responder
        self.always: Fault | None = None
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._max_in_flight = 0
        self._closing = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit TCP_NODELAY: without it the header and body writes of
        # a reply meet the client's delayed ACK and every call costs 40 ms more.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            lifespan="off",
            log_level="warning",
            access_log=False,
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            daemon=True,
            name=f"fake-openai-{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._closing.set()  # releases hung requests so shutdown is not held up
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- knobs and observations --------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def azure_endpoint(self) -> str:
        return self.base_url

    def enqueue(self, *faults: Fault) -> None:
        """Serve these next, one per request, before going back to normal answers."""
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._max_in_flight = self._in_flight
        self.always = None
        self.latency_s = 0.0
        self.responder = counting_responder

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    # -- the ASGI app ------------------------------------------------------------------
    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            await self._handle(scope, receive, send)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        path: str = scope["path"]
        azure = _AZURE_PATH.match(path)
        if scope["method"] != "POST" or (azure is None and path != _OPENAI_PATH):
            await _send_json(send, 404, _NOT_FOUND)
            return
        try:
            payload = json.loads(body or b"{}")
        except json.JSONDecodeError:
            await _send_json(send, 400, error_body("invalid_json", "The body is not JSON."))
            return
        record = self._record(scope, payload, azure)
        with self._lock:
            self._requests.append(record)
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        if not record.authorized:
            message = "Access denied due to invalid subscription key."
            await _send_json(send, 401, error_body("401", message))
        elif record.flavor == "azure" and record.api_version is None:
            await _send_json(send, 404, _NOT_FOUND)
        elif self.deployments is not None and record.deployment not in (None, *self.deployments):
            message = "The API deployment for this resource does not exist."
            await _send_json(send, 404, error_body("DeploymentNotFound", message))
        else:
            with self._lock:
                fault = self._faults.popleft() if self._faults else self.always
            await self._answer(record, fault, receive, send)

    def _record(
        self, scope: Scope, payload: dict[str, Any], azure: re.Match[str] | None
    ) -> RecordedRequest:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = parse_qs(scope.get("query_string", b"").decode())
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        api_key = headers.get("api-key")
        # Entra ID sends a bearer token the fake cannot check, so Azure accepts any one.
        authorized = (api_key == self.api_key or bool(bearer)) if azure else bearer == self.api_key
        messages = payload.get("messages") or []
        return RecordedRequest(
            flavor="azure" if azure else "openai",
            path=scope["path"],
            deployment=azure.group("deployment") if azure else None,
            api_version=(query.get("api-version") or [None])[0],
            model=payload.get("model"),
            authorized=authorized,
            credential=api_key or bearer,
            messages=messages,
            image_urls=image_urls(messages),
            body=payload,
        )

    async def _answer(
        self, record: RecordedRequest, fault: Fault | None, receive: Receive, send: Send
    ) -> None:
        model = record.model or record.deployment or "fake-model"
        if fault is None or fault.kind == "reply":
            content = fault.content if fault else self.responder(record.messages)
            await _send_json(send, 200, completion(model, content, "stop"))
        elif fault.kind == "status":
            await _send_json(send, fault.status, fault.body or {}, fault.headers)
        elif fault.kind == "content_filter_finish":
            await _send_json(send, 200, completion(model, None, "content_filter"))
        elif fault.kind == "empty":
            await _send_json(send, 200, completion(model, "  \n", "stop"))
        else:
            await self._hang(receive)
            await _send_json(send, 504, error_body("timeout", "The fake hung on purpose."))

    async def _hang(self, receive: Receive) -> None:
        # uvicorn's receive() returns http.disconnect once the client gives up.
        disconnect = asyncio.ensure_future(receive())
        try:
            while not self._closing.is_set() and not disconnect.done():
                await asyncio.wait({disconnect}, timeout=0.05)
        finally:
            disconnect.cancel()


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()
) -> None:
    data = json.dumps(payload, ensure_ascii=False).encode()
    raw_headers = [(b"content-type", b"application/json")]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data})
