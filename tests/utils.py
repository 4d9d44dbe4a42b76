"""Helpers the test files share (fixtures stay in conftest.py): a stream opened through the real
router, frames sent, the server's close awaited, the loop's clock moved, and a consumer that
reports what it has handled."""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY

from voiceflow_channels.consumers import TwilioStreamConsumer
from voiceflow_channels.layer_messages import WaitEnd, WaitStart
from voiceflow_channels.routing import build_router
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
