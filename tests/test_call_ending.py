"""Ending a call the way the assistant decides, through the real router: the caller hears every
word queued (its last mark echoed), then the decision is in the cache, then the stream closes."""

from __future__ import annotations

import base64
import json

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from tests.utils import jump_loop_clock, metric, send_all, started, yield_to_loop
from voiceflow_channels import audio, call_control, calls, wait
from voiceflow_channels.call_ending import STALL_SECONDS
from voiceflow_channels.layer_messages import CallHangup, CallTransfer

MS = 8
ALLOWED = "+15557654321"
pytestmark = pytest.mark.usefixtures("fresh_cache")


@pytest.fixture
def assistant(assistant, settings):
    """tests.utils' Assistant, with a destination to transfer to."""
    settings.VOICEFLOW_TRANSFER_ALLOWLIST = [ALLOWED]
    return assistant


def played(assistant) -> list[tuple[str, int, int]]:
    return [event[1:] for event in assistant.events if event[0] == "playback"]


async def take(ws: WebsocketCommunicator) -> dict:
    """The next message the consumer sends: a Twilio message, decoded, or the close."""
    output = await ws.receive_output(5)
    return json.loads(output["text"]) if output["type"] == "websocket.send" else output


def ms_of(message: dict) -> int:
    return len(base64.b64decode(message["media"]["payload"])) // MS


async def test_a_hangup_with_nothing_queued_closes_at_once_and_records_it(assistant, summaries):
    call, ws, consumer = await started()
    ended = metric("voiceflow_calls_ended_total", how="hangup")
    await consumer.hangup()
    assert await take(ws) == {"type": "websocket.close"}
    assert await call_control.aread_end(call.call_sid) == CallHangup(type="voiceflow.call.hangup")
    await ws.disconnect()
    assert summaries()[0].startswith(f"voiceflow call ended (hangup) callSid={call.call_sid}")
    assert metric("voiceflow_calls_ended_total", how="hangup") == ended + 1


async def test_a_hangup_waits_for_the_last_mark_of_what_is_queued(assistant, summaries):
    call, ws, consumer = await started()
    await consumer.play(b"\x10" * 500 * MS, "goodbye")
    await consumer.hangup()
    heard = 0
    while True:
        media, mark = await take(ws), await take(ws)
        assert media["event"] == "media", "nothing is closed while audio is unheard"
        assert await call_control.aread_end(call.call_sid) is None, "not decided before heard"
        heard += ms_of(media)
        await ws.send_to(text_data=call.mark(mark["mark"]["name"]))
        if mark["mark"]["name"].endswith(".end"):
            break
    assert heard == 500
    assert await take(ws) == {"type": "websocket.close"}, "closed right after the last echo"
    assert await call_control.aread_end(call.call_sid) == CallHangup(type="voiceflow.call.hangup")
    await ws.disconnect()
    assert ("goodbye", 500, 0) in played(assistant), "every word of the goodbye was heard"
    assert "played_ms=500 cleared_ms=0" in summaries()[0]


async def test_a_hangup_during_the_chime_ends_the_wait_and_does_not_wait_for_it(
    assistant, settings, summaries
):
    settings.VOICE_WAIT_SOUND_TRIGGER_MS = "0"
    _call, ws, consumer = await started()
    consumer.start_wait("tool")
    chime = [await take(ws) for _ in range(6)]  # the lead: 300 ms, a mark after each 100
    assert [m["event"] for m in chime] == ["media", "mark"] * 3
    await consumer.hangup()
    assert (await take(ws))["event"] == "clear", "the chime is cleared, not waited for"
    assert await take(ws) == {"type": "websocket.close"}
    assert not consumer.call.wait.waiting_audio_active
    await ws.disconnect()
    assert played(assistant)[0][0] == "chime"
    assert summaries()[0].startswith("voiceflow call ended (hangup)")


async def test_an_allowed_transfer_is_recorded_and_a_refused_one_leaves_the_call_going(
    assistant,
):
    call, ws, consumer = await started()
    with pytest.raises(ValueError, match="not on VOICEFLOW_TRANSFER_ALLOWLIST"):
        await consumer.transfer("+19005550100")
    assert await ws.receive_nothing(), "the call goes on"
    await consumer.transfer(ALLOWED)
    assert await take(ws) == {"type": "websocket.close"}
    assert await call_control.aread_end(call.call_sid) == CallTransfer(
        type="voiceflow.call.transfer", to=ALLOWED
    )
    await ws.disconnect()


async def test_hangup_and_transfer_from_anywhere_reach_the_call(assistant, summaries):
    for n, end in ((2, calls.ahangup), (3, lambda sid: calls.atransfer(sid, ALLOWED))):
        call, ws, _ = await started(n)
        await end(call.call_sid)
        assert await take(ws) == {"type": "websocket.close"}
        await ws.disconnect()
    assert [line.split(" callSid=")[0] for line in summaries()] == [
        "voiceflow call ended (hangup)",
        "voiceflow call ended (transfer)",
    ]


async def test_a_transfer_this_process_does_not_allow_is_refused_and_counted(
    assistant, settings, caplog
):
    call, ws, _ = await started()
    settings.VOICEFLOW_TRANSFER_ALLOWLIST = []  # another process sent it, with its own list
    refused = metric("voiceflow_call_control_failures_total", kind="transfer_refused")
    message = {"type": "voiceflow.call.transfer", "to": ALLOWED}
    await get_channel_layer().group_send(wait.group_name(call.call_sid), message)
    await audio.aplay(call.call_sid, b"\x10" * 100 * MS)
    assert (await take(ws))["event"] == "media", "the layer delivers in order: after the transfer"
    assert metric("voiceflow_call_control_failures_total", kind="transfer_refused") == refused + 1
    assert f"voiceflow refused a transfer callSid={call.call_sid}" in caplog.text
    assert ALLOWED not in caplog.text, "the number is masked"
    await send_all(ws, [call.stop()])
    await ws.disconnect()


async def test_a_cache_that_fails_is_logged_and_counted_and_the_call_still_ends(
    assistant, monkeypatch, caplog
):
    _call, ws, consumer = await started()
    failures = metric("voiceflow_call_control_failures_total", kind="cache")

    async def down(call_sid: str) -> None:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(call_control, "arecord_hangup", down)
    await consumer.hangup()
    assert await take(ws) == {"type": "websocket.close"}
    await ws.disconnect()
    assert metric("voiceflow_call_control_failures_total", kind="cache") == failures + 1
    assert "could not record the hangup" in caplog.text and "Redis is down" in caplog.text


async def test_when_twilio_stops_echoing_the_call_ends_anyway(assistant, monkeypatch, caplog):
    _call, ws, consumer = await started()
    await consumer.play(b"\x10" * 1000 * MS, "goodbye")
    await consumer.hangup()
    for _ in range(6):  # the 300 ms lead, never echoed
        await take(ws)
    jump_loop_clock(monkeypatch, STALL_SECONDS + 0.1)
    await yield_to_loop()
    assert await take(ws) == {"type": "websocket.close"}
    await ws.disconnect()
    assert "with 1000 ms unheard: no mark echo for 3 s" in caplog.text
    assert ("goodbye", 0, 1000) in played(assistant)


async def test_a_second_ending_is_ignored(assistant, caplog):
    call, ws, consumer = await started()
    await consumer.play(b"\x10" * 200 * MS, "goodbye")
    await consumer.hangup()
    await consumer.transfer(ALLOWED)
    assert "voiceflow transfer ignored" in caplog.text
    for _ in range(4):
        message = await take(ws)
        if message["event"] == "mark":
            await ws.send_to(text_data=call.mark(message["mark"]["name"]))
    assert await take(ws) == {"type": "websocket.close"}
    assert await call_control.aread_end(call.call_sid) == CallHangup(type="voiceflow.call.hangup")
    await ws.disconnect()
