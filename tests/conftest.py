from __future__ import annotations

import asyncio
import json
import logging
import os

import pytest
from channels.testing import WebsocketCommunicator

from tests.servers import Redis
from voiceflow_channels.consumers import TwilioStreamConsumer
from voiceflow_channels.routing import build_router

STREAM = "/twilio/stream"


@pytest.fixture
def flag_on(settings):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "1"
    settings.TWILIO_AUTH_TOKEN = ""
    settings.VOICEFLOW_PUBLIC_URL = ""
    return settings


@pytest.fixture
def redis():
    """A redis-server of its own on a free port; skipped where none is installed, except in CI."""
    try:
        server = Redis()
    except FileNotFoundError:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI: .ci/run must install it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    yield server
    server.stop()


@pytest.fixture
def summaries(caplog):
    """The one-line call summaries the consumer logged, newest last."""
    caplog.set_level(logging.INFO, logger="voiceflow_channels")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "call ended" in r.getMessage()]

    return lines


@pytest.fixture
def handled(monkeypatch):
    """A queue of (consumer, what) for every layer message a consumer has handled ("what" is
    the message type) and every call that has joined its group ("what" is "joined")."""
    seen: asyncio.Queue = asyncio.Queue()
    for name in ("voiceflow_wait_start", "voiceflow_wait_end"):
        original = getattr(TwilioStreamConsumer, name)

        async def wrapper(self, message, _original=original):
            await _original(self, message)
            seen.put_nowait((self, message.type))

        monkeypatch.setattr(TwilioStreamConsumer, name, wrapper)
    joined = TwilioStreamConsumer._join_layer

    async def joined_wrapper(self):
        await joined(self)
        seen.put_nowait((self, "joined"))

    monkeypatch.setattr(TwilioStreamConsumer, "_join_layer", joined_wrapper)
    return seen


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
