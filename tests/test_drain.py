"""A rolling deploy on a real server, daphne and uvicorn: SIGTERM drains, never cuts a live call."""

from __future__ import annotations

import asyncio
import signal

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.servers import SERVERS, Server
from voiceflow_channels.testing import SimulatedCall, callsim

# A draining server refuses new upgrades: uvicorn with 503 (the ASGI websocket denial response),
# daphne with the only status it can send.
REFUSED_STATUS = {"daphne": 403, "uvicorn": 503}

pytestmark = pytest.mark.parametrize("server_name", SERVERS)


async def test_sigterm_lets_a_live_call_finish_refuses_new_ones_then_exits(server_name):
    server = Server(server_name, VOZ_FEATURE_VOICE_FLOW_A="1")
    try:
        assert (await asyncio.to_thread(server.get, "/readyz"))[0] == 200
        playing = asyncio.create_task(callsim.run(server.url, 1, 3.0, True, first=901))
        await asyncio.to_thread(server.wait_for, "voiceflow start callSid=")
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait_for, r"voiceflow draining: 1 live streams")
        assert (await asyncio.to_thread(server.get, "/readyz"))[0] == 503
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(server.url):
                pass
        assert refused.value.response.status_code == REFUSED_STATUS[server_name]
        result = await playing
        assert not result.failed and result.calls[0].close_code == 1000
        [line] = await asyncio.to_thread(server.wait_for, r"call ended \(stop\) callSid=CA")
        assert "frames=150" in line
        assert await asyncio.to_thread(server.proc.wait, 20) == 0
        server.wait_for(r"voiceflow drained: 0 streams closed at the deadline; exiting")
        server.wait_for(r"refused upgrade to /twilio/stream: draining")
        assert not [line for line in server.lines if f" ERROR {server_name}" in line]
    finally:
        server.stop()


async def test_calls_past_the_drain_deadline_are_closed_cleanly_with_their_summary(server_name):
    server = Server(server_name, VOZ_FEATURE_VOICE_FLOW_A="1", VOICEFLOW_DRAIN_SECONDS="1")
    try:
        call = SimulatedCall(n=902)
        async with websockets.connect(server.url) as ws:
            for frame in (call.connected(), call.start(), call.media(), call.media()):
                await ws.send(frame)
            await asyncio.to_thread(server.wait_for, f"voiceflow start callSid={call.call_sid}")
            server.proc.send_signal(signal.SIGTERM)
            await ws.wait_closed()
        assert ws.close_code == 1000
        [line] = server.wait_for(rf"call ended \(drained\) callSid={call.call_sid}")
        assert "frames=2" in line
        assert await asyncio.to_thread(server.proc.wait, 20) == 0
        server.wait_for(r"voiceflow drained: 1 streams closed at the deadline")
    finally:
        server.stop()
