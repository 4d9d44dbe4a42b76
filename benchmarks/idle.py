"""Many calls held open and idle: each has sent `connected` and `start`, then nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import websockets

from voiceflow_channels.testing import SimulatedCall
from voiceflow_channels.testing.callsim import CONNECT_CONCURRENCY, open_socket


@asynccontextmanager
async def idle_calls(url: str, calls: int, first: int) -> AsyncIterator[list[SimulatedCall]]:
    """Open `calls` calls numbered from `first`, yield them while they idle, then hang up all."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    sockets: list[websockets.ClientConnection] = []

    async def join(call: SimulatedCall) -> None:
        async with gate:
            ws = await open_socket(url)
        sockets.append(ws)
        await ws.send(call.connected())
        await ws.send(call.start())

    held = [SimulatedCall(n) for n in range(first, first + calls)]
    try:
        await asyncio.gather(*(join(call) for call in held))
        yield held
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
