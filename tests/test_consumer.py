"""TwilioStreamConsumer through the real router, with Channels' WebsocketCommunicator."""

from __future__ import annotations

import gc
import json
import logging
import weakref
from typing import ClassVar

import pytest
from channels.testing import WebsocketCommunicator

from tests.utils import STREAM, expect_server_close, open_stream, send_all, yield_to_loop
from voiceflow_channels.consumers import TwilioStreamConsumer
from voiceflow_channels.routing import build_router
from voiceflow_channels.testing import SimulatedCall
from voiceflow_channels.twilio_events import StreamStart


async def test_whole_call(flag_on, summaries):
    call = SimulatedCall(n=3, caller="+15551234567")
    communicator = await open_stream()
    await send_all(communicator, call.whole_call(120, mark_every=50, dtmf_every=60))
    await expect_server_close(communicator)
    [summary] = summaries()
    assert f"callSid={call.call_sid} streamSid={call.stream_sid} tenant=t1" in summary
    assert "from=********4567" in summary and "+15551234567" not in summary
    assert (
        "frames=120 bytes=19200 gaps=0 out_of_order=0 marks=2 dtmf=2 unknown=0 malformed=0 "
        "waits=0 chimes=0 played_ms=0 cleared_ms=0 chime_ms=0 refused_audio=0 stale_marks=0 "
        "late_audio=0 lost_parts=0 timed_out=0 hook_errors=0 lag_p99_ms="
    ) in summary
    assert summary.endswith("drops=-")
    assert summary.startswith("voiceflow call ended (stop)")


async def test_malformed_frames_mid_call_are_counted_and_the_call_goes_on(flag_on, summaries):
    flag_on.VOICEFLOW_MAX_MESSAGE_BYTES = 2000
    call = SimulatedCall()
    communicator = await open_stream()
    await send_all(communicator, [call.connected(), call.start(), call.media()])
    await communicator.send_to(bytes_data=b"\x00\x01binary")
    await send_all(
        communicator,
        [
            "not json",
            "[1,2,3]",
            "42",
            "null",
            '{"event": null}',
            "x" * 2001,
            json.dumps(
                {
                    "event": "media",
                    "streamSid": call.stream_sid,
                    "sequenceNumber": "99",
                    "media": {"payload": "%%%"},
                }
            ),
            json.dumps({"event": "brand-new-event"}),
            json.dumps({"event": "start", "start": {"streamSid": "MZ9", "callSid": "CA9"}}),
        ],
    )
    await send_all(communicator, [call.media(), call.stop()])
    await expect_server_close(communicator)
    [summary] = summaries()
    assert "frames=2 bytes=320" in summary
    assert "unknown=1 malformed=9" in summary
    assert "drops=bad_media:1,binary:1,not_json_event:5,oversize:1,second_start:1" in summary
    # The bad media frame jumped to sequence 99; the next frame resynchronised.
    assert "gaps=96 out_of_order=1" in summary


async def test_disconnect_mid_call_is_cleaned_up_and_logged(flag_on, summaries):
    call = SimulatedCall()
    communicator = await open_stream()
    await send_all(communicator, [call.connected(), call.start(), call.media(), call.media()])
    await communicator.disconnect()
    [summary] = summaries()
    assert summary.startswith("voiceflow call ended (disconnect without stop)")
    assert "frames=2" in summary


async def test_flag_off_refuses_the_connect_quietly(settings, caplog):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "0"
    caplog.set_level(logging.INFO, logger="voiceflow_channels")
    communicator = WebsocketCommunicator(build_router(), STREAM)
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "voiceflow refused websocket /twilio/stream: no route (VOZ_FEATURE_VOICE_FLOW_A is off)"
    )


@pytest.mark.parametrize("path", ["/twilio/streams", "/other", "/"])
async def test_other_paths_are_refused_with_the_flag_on(flag_on, path):
    communicator = WebsocketCommunicator(build_router(), path)
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_no_debug_lines_without_vozlia_debug(flag_on, caplog):
    caplog.set_level(logging.DEBUG, logger="voiceflow_channels")
    call = SimulatedCall()
    communicator = await open_stream()
    await send_all(communicator, [call.start(), "garbage", call.media(), call.stop()])
    await expect_server_close(communicator)
    assert [r for r in caplog.records if r.levelno < logging.INFO] == []


async def test_debug_lines_with_vozlia_debug(flag_on, caplog):
    flag_on.VOZLIA_DEBUG = "1"
    caplog.set_level(logging.DEBUG, logger="voiceflow_channels")
    call = SimulatedCall()
    communicator = await open_stream()
    await send_all(communicator, [call.start(), "garbage", call.media(), call.stop()])
    await expect_server_close(communicator)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert debug == [f"voiceflow drop callSid={call.call_sid} drops={{'not_json_event': 1}}"]


class Kept(TwilioStreamConsumer):
    """Keeps a weak reference to each consumer it serves."""

    refs: ClassVar[list[weakref.ref[TwilioStreamConsumer]]] = []

    async def on_start(self, start: StreamStart) -> None:
        self.refs.append(weakref.ref(self))
        if start.tenant_id == "hangup":
            await self.hangup()


@pytest.mark.parametrize("tenant", ["stop", "hangup"])
async def test_an_ended_call_is_freed_without_waiting_for_the_cyclic_collector(flag_on, tenant):
    """Its helpers (outbox, watchdog, layer link, ending) hold the consumer's methods weakly:
    a cycle would keep every ended call until a full collection, which a server that froze its
    startup objects runs rarely."""
    Kept.refs = []
    gc.collect()
    gc.disable()
    try:
        call = SimulatedCall(n=71, tenant=tenant)
        ws = await open_stream(build_router(consumer=Kept))
        await send_all(ws, [call.connected(), call.start()])
        if tenant == "stop":
            await send_all(ws, [call.media(), call.stop()])
        assert (await ws.receive_output(5))["type"] == "websocket.close"
        await ws.disconnect()
        await yield_to_loop()
        del ws
        [ref] = Kept.refs
        assert ref() is None, "the consumer is gone as soon as nothing refers to it"
    finally:
        gc.enable()
