"""/metrics with several server processes (prometheus-client's multiprocess mode): any one
process answers with every process's figures added up."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import websockets

from tests.servers import Daphne, running
from voiceflow_channels.testing import SimulatedCall, callsim


@pytest.fixture
def servers(tmp_path):
    env = {"VOZ_FEATURE_VOICE_FLOW_A": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with running(2, **env) as started:
        yield started


async def figures(server: Daphne) -> dict[str, float]:
    """The samples of one process's /metrics, by name and labels."""
    status, text = await asyncio.to_thread(server.get, "/metrics")
    assert status == 200
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in samples}


async def test_metrics_add_up_every_process(servers):
    one, two = servers
    # Three calls left open, two on one process and one on the other.
    placed = [(SimulatedCall(n=n), server) for n, server in ((701, one), (702, one), (703, two))]
    async with contextlib.AsyncExitStack() as stack:  # a failed test still closes its calls
        sockets = [
            await stack.enter_async_context(websockets.connect(server.url)) for _, server in placed
        ]
        for (call, server), ws in zip(placed, sockets, strict=True):
            for frame in (call.connected(), call.start(), call.media(), call.media()):
                await ws.send(frame)
            await asyncio.to_thread(server.wait_for, f"voiceflow start callSid={call.call_sid}")
        for server in servers:
            assert (await figures(server))["voiceflow_calls_active"] == 3

        # More calls, played through to their stop by the simulator, on both processes.
        played = [
            await callsim.run(one.url, 2, 0.5, False, first=711),
            await callsim.run(two.url, 3, 0.3, False, first=721),
        ]
        assert not any(result.failed for result in played)
        for server in servers:
            assert (await figures(server))["voiceflow_calls_active"] == 3

        for (call, _), ws in zip(placed, sockets, strict=True):
            await ws.send(call.stop())
            await ws.wait_closed()
            assert ws.close_code == 1000
        calls = len(placed) + sum(len(result.calls) for result in played)
        frames = 2 * len(placed) + sum(result.media_frames for result in played)
        assert (calls, frames) == (8, 6 + 2 * 25 + 3 * 15)
        for server in servers:
            seen = await figures(server)
            assert seen['voiceflow_calls_ended_total{how="stop"}'] == calls
            assert seen["voiceflow_media_frames_total"] == frames
            assert seen["voiceflow_calls_active"] == 0


async def test_a_killed_process_no_longer_counts_its_calls(servers):
    one, two = servers
    call = SimulatedCall(n=731)
    async with websockets.connect(one.url) as ws:
        for frame in (call.connected(), call.start()):
            await ws.send(frame)
        await asyncio.to_thread(one.wait_for, f"voiceflow start callSid={call.call_sid}")
        assert (await figures(two))["voiceflow_calls_active"] == 1
        one.proc.kill()  # no drain, no goodbye: its gauge file stays behind
        await asyncio.to_thread(one.proc.wait, 10)
        assert (await figures(two))["voiceflow_calls_active"] == 0
