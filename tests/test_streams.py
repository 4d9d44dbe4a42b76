"""The process's streams and the drain, alone (no server, no sleeping past what is awaited)."""

from __future__ import annotations

import asyncio

from voiceflow_channels.streams import Streams


def test_refusal_says_why():
    streams = Streams()
    assert streams.refusal(2) is None
    streams.add("a")
    streams.add("b")
    assert streams.refusal(2) == "at_capacity"
    streams.discard("a")
    assert streams.refusal(2) is None
    streams.draining = True
    assert streams.refusal(2) == "draining"


async def test_drain_waits_for_the_live_streams_to_end_on_their_own():
    streams = Streams()
    streams.add("call")
    closed: list[str] = []

    async def close(stream: str) -> None:
        closed.append(stream)

    drain = asyncio.create_task(streams.drain(60, close))
    await asyncio.sleep(0)
    assert streams.draining and streams.refusal(10) == "draining" and not drain.done()
    streams.discard("call")
    assert await asyncio.wait_for(drain, 5) == 0
    assert closed == []


async def test_drain_closes_what_is_left_at_the_deadline():
    streams = Streams()
    streams.add("stuck")
    closed: list[str] = []

    async def close(stream: str) -> None:
        closed.append(stream)
        streams.discard(stream)

    assert await streams.drain(0, close) == 1
    assert closed == ["stuck"] and not streams.live


async def test_drain_with_nothing_live_ends_at_once():
    assert await Streams().drain(600, lambda s: asyncio.sleep(0)) == 0
