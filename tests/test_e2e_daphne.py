"""End to end: the example project under a real server, daphne and uvicorn, a call over a real
socket."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.servers import SERVERS, Server
from voiceflow_channels.testing import SimulatedCall

# How each server ends a connection whose message is over its 64 KiB limit: uvicorn (websockets)
# with a close frame, 1009; autobahn may drop the TCP connection outright (1006).
OVERSIZE_CLOSE = {"daphne": (1006, 1009), "uvicorn": (1009,)}


@pytest.fixture(params=SERVERS)
def server_on(request):
    server = Server(request.param, VOZ_FEATURE_VOICE_FLOW_A="1")
    yield server
    server.stop()


async def test_a_call_over_a_real_socket(server_on):
    call = SimulatedCall(n=11)
    async with websockets.connect(server_on.url) as ws:
        for frame in call.whole_call(250, mark_every=100, dtmf_every=125):
            await ws.send(frame)
        await ws.wait_closed()
    assert ws.close_code == 1000
    [summary] = server_on.wait_for(rf"call ended \(stop\) callSid={call.call_sid}")
    assert "frames=250 bytes=40000 gaps=0 out_of_order=0 marks=2 dtmf=2" in summary
    assert "malformed=0" in summary


@pytest.mark.parametrize("server_name", SERVERS)
async def test_oversize_frames_over_the_servers_limit_end_only_that_connection(server_name):
    server = Server(server_name, VOZ_FEATURE_VOICE_FLOW_A="1", VOZLIA_DEBUG="1")
    try:
        call = SimulatedCall(n=12)
        async with websockets.connect(server.url, max_size=None) as ws:
            await ws.send(call.start())
            await ws.send(call.media())
            await ws.send("x" * 20_000)  # over the app's bound: a counted drop
            # uvicorn never hands on the frames that arrive in the same read as an oversize one:
            # wait until the drop is handled, so both servers count the same frames.
            await asyncio.to_thread(server.wait_for, rf"drop callSid={call.call_sid}")
            await ws.send("x" * 70_000)  # over the server's 64 KiB: the connection ends
            await ws.wait_closed()
        assert ws.close_code in OVERSIZE_CLOSE[server_name]
        [summary] = server.wait_for(
            rf"call ended \(disconnect without stop\) callSid={call.call_sid}"
        )
        assert "frames=1" in summary and "drops=oversize:1" in summary
    finally:
        server.stop()


@pytest.mark.parametrize("server_name", SERVERS)
async def test_flag_off_refuses_with_403_and_no_traceback(server_name):
    server = Server(server_name, VOZ_FEATURE_VOICE_FLOW_A="0")
    try:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(server.url):
                pass
        assert refused.value.response.status_code == 403
        server.wait_for(r"voiceflow refused websocket /twilio/stream: no route")
        assert not [line for line in server.lines if "Traceback" in line]
    finally:
        server.stop()
