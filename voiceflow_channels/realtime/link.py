"""One call's connection to the model, through the official SDK: opened within a bound, the
caller's audio sent from a bounded queue that never blocks the Twilio read loop, events read in
order, and every way it can fail turned into one `ModelFailure` with a kind and a reason."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, get_args

import orjson
from openai import AsyncOpenAI, OpenAIError
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import RealtimeServerEvent
from pydantic import BaseModel, ValidationError
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.protocol import State

from ..tasks import spawn

log = logging.getLogger("voiceflow_channels")

CONNECT_TIMEOUT_S = 5.0
# 5 s of the caller's audio (20 ms frames): a model that reads slower than the caller speaks
# loses its oldest audio, counted, rather than the process its memory.
MAX_QUEUED_FRAMES = 250
# The server closes a session at its 60-minute cap with 1001 (going away).
SESSION_CAP_CLOSE = 1001
APPEND_HEAD = '{"type":"input_audio_buffer.append","audio":"'
# What a frame written at once reads of the SDK's socket (websockets' asyncio connection, as
# websockets 17 has it): a socket without them leaves every frame to the sender's queue.
SOCKET_PARTS = ("protocol", "paused", "send_in_progress", "transport", "send_data")


@functools.lru_cache(maxsize=4)
def _client(api_key: str | None, base_url: str | None) -> AsyncOpenAI:
    """One SDK client per process (per key and base URL, as the SDK reads them from the env):
    building one costs about 19 ms of CPU (its SSL context), which per call was most of what a
    call's start cost. A missing key raises OpenAIError, not cached."""
    return AsyncOpenAI(api_key=api_key, base_url=base_url)


def event_type(event: type[BaseModel]) -> str:
    """The `type` an SDK event class stands for (its Literal)."""
    (name,) = get_args(event.model_fields["type"].annotation)
    return str(name)


# The SDK's class for each server event `type` it knows (GA).
EVENT_CLASSES: dict[str, type[BaseModel]] = {
    event_type(event): event for event in get_args(get_args(RealtimeServerEvent)[0])
}


def _parse(data: bytes, connection: AsyncRealtimeConnection) -> RealtimeServerEvent:
    """The event, typed by the SDK's own models: validated as the class its `type` names (2 to
    17 us an event) rather than through the SDK's search of its union of events (40 to 90 us),
    and even than a delta's `model_construct` (34 us: the SDK's construct walks every field).
    An event its class refuses, or of a type the SDK does not know, goes to the SDK's parse. A
    message that is not JSON, or not an object with a `type`, is a ModelFailure (bad_message):
    the session can no longer be trusted to be in step."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ModelFailure("bad_message", f"a message that is not JSON ({exc})") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        what = "an object with no type" if isinstance(event, dict) else type(event).__name__
        raise ModelFailure("bad_message", f"a message that is not an event (JSON {what})")
    cls = EVENT_CLASSES.get(event["type"])
    if cls is not None:
        try:
            return cls.model_validate(event)  # type: ignore[return-value]
        except ValidationError:
            pass
    return connection.parse_event(data)


async def _send_event(connection: AsyncRealtimeConnection, event: dict[str, Any]) -> None:
    """A client event, as the JSON text the SDK's `send` would write, on its connection's socket:
    the SDK first walks the event through its `transform` against the union of every client
    event's type (132 us for a truncate, against 0.13 us for orjson), a no-op for the events
    this link sends, which carry neither aliases nor files."""
    await connection._connection.send(orjson.dumps(event), text=True)


class ModelFailure(Exception):
    """The model cannot go on: `kind` is the metric's label (connect, refused, session_cap,
    closed, session_error, rate_limit, response_failed, bad_message, internal), `reason` what
    the log says (never the key)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


class Frames:
    """The caller's audio on its way to the model: `put` returns at once, the frame written
    then and there when the link is up, nothing is queued before it and the socket takes it
    without blocking (`write`, set by the link); queued for the link's sender otherwise. Past
    MAX_QUEUED_FRAMES the oldest queued frame is dropped and counted. It outlives a connection,
    so the frames of a call's first moments (or of a reconnect) wait for the model."""

    def __init__(self) -> None:
        self.queue: deque[str] = deque()
        self.dropped = 0
        self.ready = asyncio.Event()
        self.write: Callable[[str], bool] | None = None

    def put(self, payload_b64: str) -> None:
        write = self.write
        if write is not None and not self.queue and write(payload_b64):
            return
        if len(self.queue) >= MAX_QUEUED_FRAMES:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(payload_b64)
        self.ready.set()


class ModelLink:
    """The connection, sending `frames` as they come."""

    def __init__(self, connection: AsyncRealtimeConnection, frames: Frames) -> None:
        self.connection = connection
        self._socket = connection._connection
        self._frames = frames
        self._sender = spawn(self._send_frames(frames))
        if all(hasattr(self._socket, part) for part in SOCKET_PARTS):
            frames.write = self._write_now

    @classmethod
    async def open(cls, model: str, session: dict[str, Any], frames: Frames) -> ModelLink:
        """Connect (OPENAI_API_KEY, OPENAI_BASE_URL as the SDK reads them) and configure the
        session; a ModelFailure when that fails or takes over CONNECT_TIMEOUT_S."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                client = _client(
                    os.environ.get("OPENAI_API_KEY"), os.environ.get("OPENAI_BASE_URL")
                )
                connection = await client.realtime.connect(model=model).enter()
                await _send_event(connection, {"type": "session.update", "session": session})
        except TimeoutError:
            raise ModelFailure("connect", f"not connected within {CONNECT_TIMEOUT_S:g} s") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ModelFailure("refused", f"the handshake was refused with {status}") from None
        except (OSError, WebSocketException, OpenAIError) as exc:
            raise ModelFailure("connect", f"{type(exc).__name__}: {exc}") from None
        return cls(connection, frames)

    async def send(self, event: dict[str, Any]) -> None:
        """A client event other than audio (rare: truncates, tool outputs, responses)."""
        await _send_event(self.connection, event)

    async def events(self) -> AsyncIterator[RealtimeServerEvent]:
        """The server's events in order; a ModelFailure when the server closes the session."""
        while True:
            try:
                data = await self.connection.recv_bytes()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                reason = exc.rcvd.reason if exc.rcvd is not None else ""
                kind = "session_cap" if code == SESSION_CAP_CLOSE else "closed"
                said = f"{code} {reason}" if reason else f"{code}"
                raise ModelFailure(kind, f"the server closed the session ({said})") from None
            yield _parse(data, self.connection)

    async def close(self) -> None:
        if self._frames.write == self._write_now:
            self._frames.write = None
        self._sender.cancel()
        try:
            await self.connection.close()
        except (OSError, WebSocketException) as exc:
            log.debug("voiceflow model close: %s", exc)

    def _write_now(self, payload_b64: str) -> bool:
        """One frame's `input_audio_buffer.append`, written without a task's turn when the
        socket is open and takes it without blocking: what the socket's own `send` does then
        (the frame encoded and handed to the transport), minus its wait for the send to drain,
        and minus the hop to the sender's task a queued frame costs (10.2 us of CPU a frame
        written so against 15.8 queued, 50 frames a second a call). False leaves the frame to
        the queue: the socket is closing, its buffer is over its high-water mark, or a
        fragmented message is under way; a transport that fails the write is aborted, as the
        socket's `send` would, and the reader sees the close."""
        socket = self._socket
        if (
            socket.protocol.state is not State.OPEN
            or socket.paused
            or socket.send_in_progress is not None
            or socket.transport.is_closing()
        ):
            return False
        socket.protocol.send_text((APPEND_HEAD + payload_b64 + '"}').encode())
        try:
            socket.send_data()
        except Exception as exc:
            log.debug("voiceflow model write: %s", exc)
            socket.transport.abort()
        return True

    async def _send_frames(self, frames: Frames) -> None:
        """Send the queued frames, oldest first; each is one `input_audio_buffer.append`, built
        around the payload rather than through a model of the event (50 a second a call), and
        written on the SDK connection's own socket: its `send_raw` checks a reconnect queue and
        asks anyio for the current task around every send (13.8 us an append against 5.5), and
        this link never has the SDK reconnect, so that queue stays empty. A frame leaves the
        queue as it is written (a send waits, if at all, after its write: for the socket to
        drain), so a frame dropped from a full queue is never one already sent, and `put`
        writing the next frame itself cannot pass it."""
        queue = frames.queue
        send = self._socket.send
        while True:
            await frames.ready.wait()
            frames.ready.clear()
            while queue:
                payload = queue.popleft()
                try:
                    await send(APPEND_HEAD + payload + '"}')
                except (OSError, WebSocketException):
                    queue.appendleft(payload)  # for the next session
                    return  # the reader sees the close and says why
