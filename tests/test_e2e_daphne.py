"""End to end: the example project under a real daphne, a call over a real socket."""

from __future__ import annotations

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.servers import Daphne
from voiceflow_channels.simulated_call import SimulatedCall


@pytest.fixture
def daphne_on():
    server = Daphne(VOZ_FEATURE_VOICE_FLOW_A="1")
    yield server
    server.stop()


async def test_a_call_over_a_real_socket(daphne_on):
    call = SimulatedCall(n=11)
    async with websockets.connect(daphne_on.url) as ws:
        for frame in call.whole_call(250, mark_every=100, dtmf_every=125):
            await ws.send(frame)
        await ws.wait_closed()
    assert ws.close_code == 1000
    [summary] = daphne_on.wait_for(rf"call ended \(stop\) callSid={call.call_sid}")
    assert "frames=250 bytes=40000 gaps=0 out_of_order=0 marks=2 dtmf=2" in summary
    assert "malformed=0" in summary


async def test_oversize_frames_over_daphnes_limit_end_only_that_connection(daphne_on):
    call = SimulatedCall(n=12)
    async with websockets.connect(daphne_on.url, max_size=None) as ws:
        await ws.send(call.start())
        await ws.send("x" * 20_000)  # over the app's bound: a counted drop
        await ws.send(call.media())
        await ws.send("x" * 70_000)  # over daphne's 64 KiB: the connection ends
        await ws.wait_closed()
    assert ws.close_code in (1006, 1009)  # autobahn may drop the TCP connection outright
    [summary] = daphne_on.wait_for(
        rf"call ended \(disconnect without stop\) callSid={call.call_sid}"
    )
    assert "frames=1" in summary and "drops=oversize:1" in summary


async def test_flag_off_refuses_with_403_and_no_traceback():
    server = Daphne(VOZ_FEATURE_VOICE_FLOW_A="0")
    try:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(server.url):
                pass
        assert refused.value.response.status_code == 403
        server.wait_for(r"voiceflow refused websocket /twilio/stream: no route")
        assert not [line for line in server.lines if "Traceback" in line]
    finally:
        server.stop()
