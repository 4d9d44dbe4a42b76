"""The fake Realtime server: a websockets server on 127.0.0.1 where the SDK expects OpenAI.

`AsyncOpenAI(base_url=fake.base_url, api_key=...)` makes the SDK open
`ws://127.0.0.1:PORT/v1/realtime?model=...` with `Authorization: Bearer <key>`: the handshake
is checked here as OpenAI checks it (401 for a refused key, the beta header refused), then each
connection is a `FakeConnection`. What happened is kept for tests to assert on, and
`wait_for` lets a test await a state (the Nth response started, a barge-in heard) without
sleeping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .conversation import FunctionOutput, Truncate
from .responses import ResponseRecord
from .script import Script
from .session import FakeConnection
from .wire import ServerEvents

PATH = "/v1/realtime"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # OpenAI takes appends of up to 15 MiB of audio


class FakeRealtime:
    """`async with FakeRealtime(script=Script(...)) as fake:` serves on a free port until the
    block ends; point the SDK at `fake.base_url`."""

    WAIT_SECONDS = 10.0  # the deadline of every wait_*: a broken test fails, never hangs

    def __init__(
        self,
        script: Script | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.script = script or Script()  # read by each new connection
        self.host = host
        self.port = port
        self.events = ServerEvents()
        self.connections: list[FakeConnection] = []
        self.handshakes_refused = 0  # answered 401 (or 400/404 for a wrong URL)
        self.handshakes_hung = 0  # never answered (Script.hang_handshake)
        self.crashes: list[Exception] = []  # the fake's own failures (the SDK changed, a bug)
        self._log = log
        self._server: Server | None = None
        self._closing = asyncio.Event()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    @property
    def base_url(self) -> str:
        """The SDK's `base_url` (or OPENAI_BASE_URL) for this fake."""
        return f"http://{self.host}:{self.port}/v1"

    async def __aenter__(self) -> FakeRealtime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._server = await serve(
            self._serve,
            self.host,
            self.port,
            process_request=self._handshake,
            open_timeout=None,  # a hung handshake (Script.hang_handshake) hangs until close
            max_size=MAX_MESSAGE_BYTES,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def close(self) -> None:
        """Close every connection (1001, as a server going away) and stop listening."""
        self._closing.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.crashes:
            raise RuntimeError(f"the fake Realtime server failed: {self.crashes[0]!r}") from (
                self.crashes[0]
            )

    # -- what happened ------------------------------------------------------------------------

    @property
    def sessions(self) -> list[dict[str, Any]]:
        """Every `session` a client sent in a session.update, all connections, in order."""
        return [session for c in self.connections for session in c.sessions]

    @property
    def client_event_types(self) -> list[str]:
        return [kind for c in self.connections for kind in c.client_event_types]

    @property
    def responses(self) -> list[ResponseRecord]:
        return [response for c in self.connections for response in c.responses]

    @property
    def truncates(self) -> list[Truncate]:
        return [truncate for c in self.connections for truncate in c.truncates]

    @property
    def function_outputs(self) -> list[FunctionOutput]:
        return [output for c in self.connections for output in c.function_outputs]

    @property
    def errors_sent(self) -> list[dict[str, Any]]:
        return [error for c in self.connections for error in c.errors_sent]

    @property
    def response_creates(self) -> int:
        return sum(c.response_creates for c in self.connections)

    @property
    def response_instructions(self) -> list[str | None]:
        """The instructions of each response.create accepted (None: the session's)."""
        return [text for c in self.connections for text in c.response_instructions]

    @property
    def user_texts(self) -> list[str]:
        return [text for c in self.connections for text in c.user_texts]

    @property
    def cancels(self) -> int:
        return sum(c.cancels for c in self.connections)

    @property
    def speech_started_ms(self) -> list[int]:
        return [ms for c in self.connections for ms in c.speech_started_ms]

    # -- waiting for a state ------------------------------------------------------------------

    def changed(self) -> None:
        """Something was recorded: wake the waiters whose condition now holds."""
        for predicate, future in self._waiters:
            if not future.done() and predicate():
                future.set_result(None)

    def crashed(self, exc: Exception) -> None:
        """The fake itself failed: every waiter fails now with it, and so does the `async with`
        at its end, rather than a test timing out on a server that went quiet."""
        self.crashes.append(exc)
        for _predicate, future in self._waiters:
            if not future.done():
                future.set_exception(exc)

    async def wait_for(self, predicate: Callable[[], bool], what: str = "the condition") -> None:
        """Return once `predicate()` holds, checked whenever the fake records something: no
        polling, no sleeping. After `WAIT_SECONDS` (a deadline, never a pause) TimeoutError
        names `what`; wrap the call in `asyncio.timeout` for a shorter one."""
        if predicate():
            return
        entry = (predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(self.WAIT_SECONDS):
                await entry[1]
        except TimeoutError:
            raise TimeoutError(f"fake realtime: {what} not within {self.WAIT_SECONDS} s") from None
        finally:
            self._waiters.remove(entry)

    async def wait_connections(self, count: int = 1) -> FakeConnection:
        """The `count`th connection, once its handshake has been accepted."""
        await self.wait_for(lambda: len(self.connections) >= count, f"connection {count}")
        return self.connections[count - 1]

    async def wait_response_started(self, count: int = 1) -> ResponseRecord:
        """The `count`th response (all connections), once its `response.created` is sent."""
        await self.wait_for(
            lambda: sum(r.started for r in self.responses) >= count, f"response {count} started"
        )
        return [r for r in self.responses if r.started][count - 1]

    async def wait_response_done(self, count: int = 1) -> ResponseRecord:
        """The `count`th response to end, once its `response.done` is sent (late deltas come
        after it: wait for `late_deltas_sent` to see them)."""
        await self.wait_for(
            lambda: sum(r.done for r in self.responses) >= count, f"response {count} done"
        )
        return [r for r in self.responses if r.done][count - 1]

    async def wait_speech_started(self, count: int = 1) -> int:
        """The `audio_start_ms` of the `count`th `input_audio_buffer.speech_started` sent."""
        await self.wait_for(lambda: len(self.speech_started_ms) >= count, f"speech_started {count}")
        return self.speech_started_ms[count - 1]

    def log(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    # -- the handshake ------------------------------------------------------------------------

    async def _handshake(self, _connection: ServerConnection, request: Request) -> Response | None:
        """Refuse what OpenAI refuses at the HTTP level; None accepts the upgrade."""
        if self.script.hang_handshake:
            self.handshakes_hung += 1
            self.changed()
            await self._closing.wait()
            return None  # the server is closing: websockets answers 503
        url = urlsplit(request.path)
        if url.path != PATH:
            return self._refuse(
                HTTPStatus.NOT_FOUND, "invalid_request_error", None, f"Invalid URL (GET {url.path})"
            )
        if not parse_qs(url.query).get("model"):
            return self._refuse(
                HTTPStatus.BAD_REQUEST,
                "invalid_request_error",
                "missing_model",
                "Missing required parameter: 'model'.",
            )
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not key or key in self.script.refuse_keys:
            masked = f"{key[:3]}...{key[-4:]}" if len(key) > 8 else "***"
            return self._refuse(
                HTTPStatus.UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
                f"Incorrect API key provided: {masked}.",
            )
        return None

    def _refuse(self, status: HTTPStatus, kind: str, code: str | None, message: str) -> Response:
        self.handshakes_refused += 1
        self.log(f"handshake refused {status.value}")
        self.changed()
        error = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        body = json.dumps(error).encode()
        headers = Headers(
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return Response(status.value, status.phrase, headers, body)

    async def _serve(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None  # the handshake is done
        model = parse_qs(urlsplit(request.path).query)["model"][0]  # refused without one
        connection = FakeConnection(self, ws, len(self.connections) + 1, model)
        self.connections.append(connection)
        self.log(f"connection {connection.number} opened model={model}")
        self.changed()
        try:
            if "realtime=v1" in request.headers.get("OpenAI-Beta", ""):
                await connection.refuse_beta()
            else:
                await connection.run()
        except Exception as exc:
            self.crashed(exc)
            raise
        self.log(f"connection {connection.number} closed code={connection.close_code}")
