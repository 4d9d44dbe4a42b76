"""How the caller's audio reaches the model: each frame one `input_audio_buffer.append`, written
by `put` itself while the socket takes it, queued while it would block or while no session is
up, and always in the caller's order; a full queue drops its oldest frames, counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from voiceflow_channels.realtime import link as model_link
from voiceflow_channels.realtime.link import MAX_QUEUED_FRAMES, Frames, ModelFailure, ModelLink


class Model:
    """A websocket server where the SDK expects OpenAI: it keeps the payload of every append,
    in the order they came."""

    def __init__(self) -> None:
        self.appended: list[str] = []
        self.connections: list[ServerConnection] = []
        self._arrived = asyncio.Condition()

    async def serve(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        async for message in ws:
            event = orjson.loads(message)
            if event["type"] == "input_audio_buffer.append":
                async with self._arrived:
                    self.appended.append(event["audio"])
                    self._arrived.notify_all()

    async def heard(self, count: int) -> list[str]:
        async with asyncio.timeout(10), self._arrived:
            await self._arrived.wait_for(lambda: len(self.appended) >= count)
        return self.appended


@pytest.fixture
async def model(monkeypatch) -> AsyncIterator[Model]:
    model = Model()
    async with serve(model.serve, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        yield model


def numbered(count: int, start: int = 0) -> list[str]:
    return [f"frame{n:04d}" for n in range(start, start + count)]


async def test_put_writes_the_frame_itself_while_the_socket_takes_it(model: Model) -> None:
    frames = Frames()
    link = await ModelLink.open("gpt-realtime", {"type": "realtime"}, frames)
    for payload in numbered(3):
        frames.put(payload)
        assert not frames.queue  # written at once: no task's turn between
    assert await model.heard(3) == numbered(3)
    await link.close()


async def test_frames_queue_while_the_socket_would_block_and_keep_their_order(
    model: Model,
) -> None:
    frames = Frames()
    link = await ModelLink.open("gpt-realtime", {"type": "realtime"}, frames)
    socket = link.connection._connection
    socket.pause_writing()  # what the transport says past its high-water mark
    for payload in numbered(5):
        frames.put(payload)
    assert len(frames.queue) == 5
    await asyncio.sleep(0)  # the sender writes one, then waits for the socket to drain
    socket.resume_writing()
    for payload in numbered(2, start=5):
        frames.put(payload)  # queued behind the frames still waiting: never ahead of them
    assert await model.heard(7) == numbered(7)
    assert not frames.queue and frames.dropped == 0
    await link.close()


async def test_frames_before_the_session_wait_for_it_and_a_full_queue_drops_the_oldest(
    model: Model,
) -> None:
    frames = Frames()
    for payload in numbered(MAX_QUEUED_FRAMES + 10):
        frames.put(payload)
    assert frames.dropped == 10
    link = await ModelLink.open("gpt-realtime", {"type": "realtime"}, frames)
    frames.put("after")  # behind the queue, never ahead of it: the queue's oldest goes
    assert frames.dropped == 11
    assert await model.heard(MAX_QUEUED_FRAMES) == [
        *numbered(MAX_QUEUED_FRAMES - 1, start=11),
        "after",
    ]
    await link.close()


async def test_a_closed_session_leaves_the_frames_for_the_next(model: Model) -> None:
    frames = Frames()
    link = await ModelLink.open("gpt-realtime", {"type": "realtime"}, frames)
    frames.put("heard")
    await model.heard(1)
    await model.connections[0].close(1011, "gone")
    with pytest.raises(ModelFailure, match="closed the session"):
        async for _ in link.events():
            pass
    frames.put("kept")  # the socket is closed: queued, not lost and not raised
    assert list(frames.queue) == ["kept"]
    await link.close()
    assert frames.write is None
    next_link = await ModelLink.open("gpt-realtime", {"type": "realtime"}, frames)
    assert await model.heard(2) == ["heard", "kept"]
    await next_link.close()


async def test_a_socket_without_what_a_write_at_once_reads_leaves_frames_to_the_sender(
    model: Model, monkeypatch
) -> None:
    monkeypatch.setattr(model_link, "SOCKET_PARTS", (*model_link.SOCKET_PARTS, "renamed"))
    frames = Frames()
    link = await ModelLink.open("gpt-realtime", {"type": "realtime"}, frames)
    assert frames.write is None
    for payload in numbered(3):
        frames.put(payload)
    assert len(frames.queue) == 3
    assert await model.heard(3) == numbered(3)
    await link.close()
