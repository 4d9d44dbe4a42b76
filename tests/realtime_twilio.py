"""Twilio's side of a call to a `RealtimeAssistant`, in process, for the assistant's tests: a
stream through the real router, the caller's frames (silence or a loud voice, 20 ms each), and
what the assistant sends read as Twilio reads it, marks echoed when the test says they played."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from typing import Any

from channels.testing import WebsocketCommunicator

from tests.utils import STREAM, send_all
from voiceflow_channels.call_port import Assistant
from voiceflow_channels.consumers import TwilioStreamConsumer
from voiceflow_channels.mulaw import FRAME_BYTES, MULAW_SILENCE, linear_to_mulaw
from voiceflow_channels.realtime import RealtimeAssistant
from voiceflow_channels.routing import build_router
from voiceflow_channels.testing import SimulatedCall

SILENCE = bytes([MULAW_SILENCE]) * FRAME_BYTES
# A loud 200 Hz frame: far over the fake's VAD threshold (RMS 500).
VOICE = linear_to_mulaw(round(8000 * math.sin(2 * math.pi * 200 * i / 8000)) for i in range(160))


def ended(message: dict[str, Any]) -> bool:
    """The mark that ends an utterance (its last audio played)."""
    return message["event"] == "mark" and message["mark"]["name"].endswith(".end")


def say(assistant: RealtimeAssistant, frames: int, audio: bytes = VOICE) -> None:
    """`frames` of the caller's audio handed straight to `assistant`, as its call would."""
    payload = base64.b64encode(audio).decode()
    for _ in range(frames):
        assistant.hear(payload)


class Twilio:
    """One call's stream, as Twilio holds it."""

    def __init__(
        self,
        assistant: type[Assistant],
        n: int = 1,
        consumer: type[TwilioStreamConsumer] = TwilioStreamConsumer,
    ) -> None:
        self.call = SimulatedCall(n=n)
        router = build_router(consumer=consumer, assistant=assistant)
        self.ws = WebsocketCommunicator(router, STREAM)
        self.sent: list[dict[str, Any]] = []  # everything the assistant sent, in order
        self.closed = False

    async def start(self) -> None:
        assert (await self.ws.connect())[0]
        await send_all(self.ws, [self.call.connected(), self.call.start()])

    async def say(self, frames: int, audio: bytes = VOICE) -> None:
        """`frames` 20 ms frames of the caller's audio: a voice unless told otherwise."""
        for _ in range(frames):
            await self.ws.send_to(text_data=self.call.media_with(audio))

    async def pause(self, frames: int = 30) -> None:
        """`frames` of silence: 600 ms ends the caller's turn (the VAD's 500 ms)."""
        await self.say(frames, SILENCE)

    async def read(self) -> dict[str, Any] | None:
        """The assistant's next message, or None once it closed the stream."""
        output = await self.ws.receive_output(10)
        if output["type"] == "websocket.close":
            self.closed = True
            return None
        message: dict[str, Any] = json.loads(output["text"])
        self.sent.append(message)
        return message

    async def play_until(self, done: Any, echo: bool = True) -> None:
        """Read, echoing each mark as Twilio does once its audio has played (all at once:
        time runs as fast as the test), until `done(message)` or the close."""
        async with asyncio.timeout(20):
            while True:
                message = await self.read()
                if message is None:
                    return
                if echo and message["event"] == "mark":
                    await self.ws.send_to(text_data=self.call.mark(message["mark"]["name"]))
                if done(message):
                    return

    def audio(self, since: int = 0, upto: str | None = None) -> bytes:
        """The audio sent from message `since` on, up to the mark named `upto` if given."""
        audio = []
        for m in self.sent[since:]:
            if m["event"] == "media":
                audio.append(base64.b64decode(m["media"]["payload"]))
            elif m["event"] == "mark" and m["mark"]["name"] == upto:
                break
        return b"".join(audio)

    def events(self) -> list[str]:
        return [m["event"] for m in self.sent]

    async def hang_up(self) -> None:
        if not self.closed:
            await send_all(self.ws, [self.call.stop()])
            while await self.read() is not None:
                pass
        await self.ws.disconnect()
