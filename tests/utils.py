"""Helpers the test files share (fixtures stay in conftest.py): a stream opened through the real
router, frames sent, the server's close awaited, the loop's clock moved, a consumer that
reports what it has handled, and an assistant that records its hooks, with the helpers that
play Twilio to it (read what it sends, echo its marks)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import ClassVar

from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY

from voiceflow_channels.consumers import TwilioStreamConsumer
from voiceflow_channels.layer_messages import WaitEnd, WaitStart
from voiceflow_channels.routing import build_router
from voiceflow_channels.testing import SimulatedCall
from voiceflow_channels.twilio_events import StreamStart

STREAM = "/twilio/stream"


class RecordingConsumer(TwilioStreamConsumer):
    """The real consumer, putting (consumer, what) on `handled` (the fixture of that name sets
    it): "joined" from `on_start`, which the consumer runs at `start` once it has joined its
    call's group, then the type of each wait message from the layer, once it is handled.
    Serve it with `build_router(consumer=RecordingConsumer)`."""

    handled: ClassVar[asyncio.Queue]

    async def on_start(self, start: StreamStart) -> None:
        self.handled.put_nowait((self, "joined"))

    async def voiceflow_wait_start(self, message: WaitStart) -> None:
        await super().voiceflow_wait_start(message)
        self.handled.put_nowait((self, message.type))

    async def voiceflow_wait_end(self, message: WaitEnd) -> None:
        await super().voiceflow_wait_end(message)
        self.handled.put_nowait((self, message.type))


async def open_stream(router=None, headers=None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(router or build_router(), STREAM, headers or [])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def send_all(communicator: WebsocketCommunicator, frames) -> None:
    for frame in frames:
        await communicator.send_to(text_data=frame)


async def expect_server_close(communicator: WebsocketCommunicator) -> list[dict]:
    """Read what the server sends until it closes (after stop); returns the messages before."""
    sent = []
    while (output := await communicator.receive_output(timeout=5))["type"] == "websocket.send":
        sent.append(json.loads(output["text"]))
    assert output == {"type": "websocket.close"}
    await communicator.disconnect()
    return sent


async def yield_to_loop(times: int = 5) -> None:
    """Let already-due callbacks run; no time passes."""
    for _ in range(times):
        await asyncio.sleep(0)


def jump_loop_clock(monkeypatch, seconds: float) -> None:
    """Move the running loop's clock `seconds` further forward (jumps add up): timers due by
    then run on its next turn."""
    loop = asyncio.get_running_loop()
    real = loop.time
    monkeypatch.setattr(loop, "time", lambda: real() + seconds)


def metric(name: str, **labels: str) -> float:
    """The value of one of this process's Prometheus samples now; 0 before its first count."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


MS = 8


class Assistant(TwilioStreamConsumer):
    """Records every hook call; `play`s on a keypress, as an assistant would."""

    events: ClassVar[list] = []
    started: ClassVar[asyncio.Queue]

    async def on_start(self, start: StreamStart) -> None:
        self.events.append(("start", start))
        self.started.put_nowait(self)

    async def on_dtmf(self, digit: str) -> None:
        self.events.append(("dtmf", digit))
        if digit == "9":
            raise RuntimeError("the assistant tripped")

    async def on_audio(self, mulaw: bytes) -> None:
        self.events.append(("audio", mulaw))

    async def on_playback(self, label: str, played_ms: int, cleared_ms: int) -> None:
        self.events.append(("playback", label, played_ms, cleared_ms))

    async def on_stop(self) -> None:
        self.events.append(("stop",))


async def started(n: int = 1) -> tuple[SimulatedCall, WebsocketCommunicator, Assistant]:
    call = SimulatedCall(n=n)
    ws = WebsocketCommunicator(build_router(consumer=Assistant), STREAM)
    assert (await ws.connect())[0]
    await send_all(ws, [call.connected(), call.start()])
    return call, ws, await asyncio.wait_for(Assistant.started.get(), 5)


async def take(ws: WebsocketCommunicator, count: int) -> list[dict]:
    """The next `count` messages the consumer sends, decoded."""
    return [json.loads((await ws.receive_output(5))["text"]) for _ in range(count)]


def mark_names(messages: list[dict]) -> list[str]:
    return [m["mark"]["name"] for m in messages if m["event"] == "mark"]


def media_ms(messages: list[dict]) -> list[int]:
    return [
        len(base64.b64decode(m["media"]["payload"])) // MS
        for m in messages
        if m["event"] == "media"
    ]


async def play_out(ws, call, messages: list[dict]) -> list[dict]:
    """Echo every mark, as Twilio does once the audio before it has played, until one utterance
    has played out; returns everything the consumer sent for it. Until its ".end" mark has been
    sent, each echo refills the lead with one more segment (a media and a mark)."""
    sent = list(messages)
    pending = mark_names(messages)
    while pending:
        await ws.send_to(text_data=call.mark(pending.pop(0)))
        if not any(name.endswith(".end") for name in mark_names(sent)):
            more = await take(ws, 2)
            sent += more
            pending += mark_names(more)
    return sent


class Clock:
    """A clock a test moves (`now`, in seconds) for the framework-free modules."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now
