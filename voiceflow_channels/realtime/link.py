"""One call's connection to the model, through the official SDK: opened within a bound, the
caller's audio sent from a bounded queue that never blocks the Twilio read loop, events read in
order, and every way it can fail turned into one `ModelFailure` with a kind and a reason."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from openai import AsyncOpenAI, OpenAIError
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import RealtimeServerEvent
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

log = logging.getLogger("voiceflow_channels")

CONNECT_TIMEOUT_S = 5.0
# 5 s of the caller's audio (20 ms frames): a model that reads slower than the caller speaks
# loses its oldest audio, counted, rather than the process its memory.
MAX_QUEUED_FRAMES = 250
# The server closes a session at its 60-minute cap with 1001 (going away).
SESSION_CAP_CLOSE = 1001
APPEND_HEAD = '{"type":"input_audio_buffer.append","audio":"'


class ModelFailure(Exception):
    """The model cannot go on: `kind` is the metric's label (connect, refused, session_cap,
    closed, session_error, rate_limit), `reason` what the log says (never the key)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


class ModelLink:
    """The connection; `send_audio` queues a frame's base64 payload and returns at once."""

    def __init__(self, connection: AsyncRealtimeConnection) -> None:
        self.connection = connection
        self.dropped_frames = 0
        self._frames: deque[str] = deque()
        self._wake = asyncio.Event()
        self._sender = asyncio.create_task(self._send_frames())

    @classmethod
    async def open(cls, model: str, session: dict[str, Any]) -> ModelLink:
        """Connect (OPENAI_API_KEY, OPENAI_BASE_URL as the SDK reads them) and configure the
        session; a ModelFailure when that fails or takes over CONNECT_TIMEOUT_S."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                client = AsyncOpenAI()
                connection = await client.realtime.connect(model=model).enter()
                await connection.session.update(session=session)  # type: ignore[arg-type]
        except TimeoutError:
            raise ModelFailure("connect", f"not connected within {CONNECT_TIMEOUT_S:g} s") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ModelFailure("refused", f"the handshake was refused with {status}") from None
        except (OSError, WebSocketException, OpenAIError) as exc:
            raise ModelFailure("connect", f"{type(exc).__name__}: {exc}") from None
        return cls(connection)

    def send_audio(self, payload_b64: str) -> None:
        """Queue one frame of the caller's audio (Twilio's base64 payload, sent as is)."""
        if len(self._frames) >= MAX_QUEUED_FRAMES:
            self._frames.popleft()
            self.dropped_frames += 1
        self._frames.append(payload_b64)
        self._wake.set()

    async def send(self, event: dict[str, Any]) -> None:
        """A client event other than audio (rare: truncates, tool outputs, responses)."""
        await self.connection.send(event)  # type: ignore[arg-type]

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
            yield self.connection.parse_event(data)

    async def close(self) -> None:
        self._sender.cancel()
        try:
            await self.connection.close()
        except (OSError, WebSocketException) as exc:
            log.debug("voiceflow model close: %s", exc)

    async def _send_frames(self) -> None:
        """Send the queued frames, oldest first; each is one `input_audio_buffer.append`, built
        around the payload rather than through a model of the event (50 a second a call)."""
        frames = self._frames
        while True:
            await self._wake.wait()
            self._wake.clear()
            while frames:
                text = APPEND_HEAD + frames.popleft() + '"}'
                try:
                    await self.connection.send_raw(text)
                except (OSError, WebSocketException):
                    return  # the reader sees the close and says why
