"""Timeouts on a real daphne: 1,000 sockets that connect and send nothing are all closed after
VOICEFLOW_START_TIMEOUT_S, counted in one log line each, and the process's memory comes back."""

from __future__ import annotations

import asyncio

import psutil

from tests.servers import Daphne
from voiceflow_channels.testing.callsim import CONNECT_CONCURRENCY, open_socket

SOCKETS = 1000
# As in the soak: the first waves grow the heap to a plateau; after one warm-up wave, a second
# wave of 1,000 must leave RSS within this of it.
RSS_MARGIN_BYTES = 12 * 1024 * 1024


async def silent_wave(url: str) -> list[int | None]:
    """Open SOCKETS connections that send nothing; the close code of each, once the server
    has closed them all."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> int | None:
        async with gate:
            ws = await open_socket(url)
        await ws.wait_closed()
        return ws.close_code

    return await asyncio.gather(*(one() for _ in range(SOCKETS)))


async def test_a_thousand_silent_sockets_are_closed_and_memory_comes_back():
    server = Daphne(VOZ_FEATURE_VOICE_FLOW_A="1", VOICEFLOW_START_TIMEOUT_S="2")
    try:
        process = psutil.Process(server.proc.pid)
        assert set(await silent_wave(server.url)) == {1000}
        await asyncio.to_thread(server.wait_for, "no start within", 60, SOCKETS)
        baseline = process.memory_info().rss
        assert set(await silent_wave(server.url)) == {1000}
        lines = await asyncio.to_thread(server.wait_for, "no start within", 60, 2 * SOCKETS)
        assert len(lines) == 2 * SOCKETS
        assert lines[0].endswith(
            "closed stream callSid=-: no start within VOICEFLOW_START_TIMEOUT_S=2"
        )
        assert not [line for line in server.lines if "call ended" in line]
        assert process.memory_info().rss - baseline < RSS_MARGIN_BYTES
    finally:
        server.stop()
