"""Outbound audio through the real router: play, marks, clear, the chime, hooks, the layer API.

The test plays Twilio: it reads what the consumer sends and echoes marks as Twilio would.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from tests.utils import (
    MS,
    STREAM,
    Assistant,
    expect_server_close,
    mark_names,
    media_ms,
    metric,
    play_out,
    send_all,
    started,
    take,
)
from voiceflow_channels import audio, wait
from voiceflow_channels.chime import synthesize_chime
from voiceflow_channels.routing import build_router
from voiceflow_channels.testing import SimulatedCall
from voiceflow_channels.twilio_events import StreamStart


async def test_speech_is_mark_clocked_and_its_books_balance(assistant, summaries):
    call, ws, consumer = await started()
    await consumer.play(b"\x10" * 1000 * MS, "speech")
    first = await take(ws, 6)
    assert [m["event"] for m in first] == ["media", "mark"] * 3
    assert {m["streamSid"] for m in first} == {call.stream_sid}
    assert media_ms(first) == [100, 100, 100], "never more than the 300 ms lead ahead"
    assert await ws.receive_nothing(), "nothing more until Twilio echoes a mark"
    sent = await play_out(ws, call, first)
    assert sum(media_ms(sent)) == 1000 and mark_names(sent)[-1].endswith(".end")
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    assert ("playback", "speech", 1000, 0) in assistant.events
    assert assistant.events[-1] == ("stop",)
    await consumer.play(b"\x10" * 800)  # after the call: nothing is queued, nothing is sent
    assert consumer.playback.idle
    assert "played_ms=1000 cleared_ms=0 chime_ms=0 refused_audio=0" in summaries()[0]


async def test_clear_mid_utterance_and_the_marks_echoed_after_it(assistant, summaries):
    call, ws, consumer = await started()
    await consumer.play(b"\x10" * 1000 * MS, "speech")
    first = await take(ws, 6)
    names = mark_names(first)
    await ws.send_to(text_data=call.mark(names[0]))  # 100 ms played
    await take(ws, 2)
    await consumer.clear()
    [clear] = await take(ws, 1)
    assert clear == {"event": "clear", "streamSid": call.stream_sid}
    assert ("playback", "speech", 100, 900) in assistant.events
    # Twilio echoes the cleared marks at once: none is played, none refills anything.
    await send_all(ws, [call.mark(n) for n in names[1:]])
    await send_all(ws, [call.stop()])
    assert await expect_server_close(ws) == []
    assert "played_ms=100 cleared_ms=900" in summaries()[0]
    assert "stale_marks=2" in summaries()[0]


async def test_the_chime_plays_past_the_threshold_and_speech_clears_it(assistant, summaries):
    call, ws, consumer = await started()
    consumer.call.wait.threshold_ms = 0  # due at once: the timer path is tested in test_wait_layer
    consumer.start_wait("llm")
    chime = await take(ws, 6)
    assert media_ms(chime) == [100, 100, 100]
    assert base64.b64decode(chime[0]["media"]["payload"]) == synthesize_chime()[: 100 * MS]
    await ws.send_to(text_data=call.mark(mark_names(chime)[0]))
    await take(ws, 2)
    await consumer.play(b"\x10" * 200 * MS, "speech")
    speech = await take(ws, 5)
    assert speech[0] == {"event": "clear", "streamSid": call.stream_sid}
    assert media_ms(speech) == [100, 100]
    assert base64.b64decode(speech[1]["media"]["payload"]) == b"\x10" * 100 * MS
    assert ("playback", "chime", 100, 400) in assistant.events
    consumer.end_wait()
    assert await ws.receive_nothing(), "the wait's end never clears the assistant"
    await play_out(ws, call, speech)
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    assert "chimes=1 played_ms=300 cleared_ms=400 chime_ms=100" in summaries()[0]


async def test_wait_end_clears_the_chime_and_it_repeats_while_waiting(assistant, summaries):
    call, ws, consumer = await started()
    consumer.call.wait.threshold_ms = 0
    consumer.call.wait.repeat_ms = 0  # the next chime as soon as this one has played
    consumer.start_wait("llm")
    chime = await take(ws, 6)
    sent = await play_out(ws, call, chime)
    assert sum(media_ms(sent)) == 500
    again = await take(ws, 6)
    assert media_ms(again) == [100, 100, 100]
    consumer.end_wait()
    [clear] = await take(ws, 1)
    assert clear["event"] == "clear"
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    assert "chimes=2 played_ms=500 cleared_ms=500 chime_ms=500" in summaries()[0]


async def test_audio_and_clear_through_the_layer(assistant, summaries):
    call, ws, _ = await started()
    await audio.aplay(call.call_sid, b"\x10" * 2500 * MS, label="reply")
    sent = await play_out(ws, call, await take(ws, 6))
    assert sum(media_ms(sent)) == 2500
    await audio.aplay(call.call_sid, b"\x10" * 500 * MS)
    await take(ws, 6)
    await audio.aclear(call.call_sid)
    assert (await take(ws, 1))[0]["event"] == "clear"
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    playbacks = [e for e in assistant.events if e[0] == "playback"]
    assert playbacks == [("playback", "reply", 2500, 0), ("playback", "speech", 0, 500)]


async def test_late_parts_of_a_cleared_utterance_are_ignored(assistant, summaries):
    call, ws, consumer = await started()
    layer = get_channel_layer()
    group = wait.group_name(call.call_sid)
    part = {"type": "voiceflow.audio.play", "utterance": "u1", "label": "speech"}
    await layer.group_send(group, {**part, "part": 0, "final": False, "audio": b"\x10" * 800})
    assert media_ms(await take(ws, 2)) == [100]
    await consumer.clear()
    assert (await take(ws, 1))[0]["event"] == "clear"
    await layer.group_send(group, {**part, "part": 1, "final": True, "audio": b"\x10" * 800})
    await audio.aclear(call.call_sid)  # in order behind the late part: once it is handled...
    await send_all(ws, [call.stop()])
    assert await expect_server_close(ws) == [], "...nothing of the late part was sent"
    assert "late_audio=1" in summaries()[0]


async def test_a_lost_part_through_the_layer_is_counted_and_logged(assistant, summaries, caplog):
    call, ws, _ = await started()
    group = wait.group_name(call.call_sid)
    part = {"type": "voiceflow.audio.play", "utterance": "u1", "label": "speech", "final": False}
    layer = get_channel_layer()
    await layer.group_send(group, {**part, "part": 0, "audio": b"\x10" * 800})
    await layer.group_send(group, {**part, "part": 2, "final": True, "audio": b"\x10" * 800})
    sent = await take(ws, 4)
    assert media_ms(sent) == [100, 100], "what came still plays"
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    assert "lost_parts=1" in summaries()[0]
    assert (
        f"voiceflow audio parts never arrived callSid={call.call_sid} utterance=u1" in caplog.text
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"audio": "not bytes"},
        {"audio": b""},
        {"audio": b"\x10" * 8001},
        {"part": -1},
        {"label": ""},
        {"label": "x\n"},
        {"utterance": "../etc"},
        {"final": "yes"},
    ],
)
async def test_hostile_audio_from_the_layer_is_ignored_and_counted(assistant, caplog, bad):
    call, ws, _ = await started()
    before = metric("voiceflow_layer_failures_total", kind="bad_message")
    message = {
        "type": "voiceflow.audio.play",
        "utterance": "u1",
        "label": "speech",
        "part": 0,
        "final": True,
        "audio": b"\x10" * 800,
        **bad,
    }
    await get_channel_layer().group_send(wait.group_name(call.call_sid), message)
    await audio.aplay(call.call_sid, b"\x10" * 100 * MS, label="after")
    sent = await take(ws, 2)
    assert media_ms(sent) == [100], "the bad message played nothing; the next one plays"
    assert metric("voiceflow_layer_failures_total", kind="bad_message") == before + 1
    assert "voiceflow ignored layer message" in caplog.text
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)


async def test_hooks_get_typed_events_and_a_raising_hook_never_ends_the_call(
    assistant, summaries, caplog
):
    call, ws, _ = await started()
    await send_all(ws, [call.media(), call.dtmf("9"), call.dtmf("#"), call.stop()])
    await expect_server_close(ws)
    start = assistant.events[0][1]
    assert isinstance(start, StreamStart)
    assert (start.callSid, start.streamSid, start.tenant_id) == (
        call.call_sid,
        call.stream_sid,
        "t1",
    )
    assert ("audio", b"\xff" * 160) in assistant.events
    assert [e for e in assistant.events if e[0] == "dtmf"] == [("dtmf", "9"), ("dtmf", "#")]
    assert assistant.events[-1] == ("stop",)
    assert "hook_errors=1" in summaries()[0]
    [record] = [r for r in caplog.records if "hook on_dtmf raised" in r.getMessage()]
    assert record.exc_info and "the assistant tripped" in caplog.text


async def test_audio_past_the_queue_bound_is_refused_counted_and_logged(
    assistant, flag_on, summaries, caplog
):
    flag_on.VOICEFLOW_MAX_QUEUED_AUDIO_MS = "1000"
    call, ws, consumer = await started()
    await consumer.play(b"\x10" * 800 * MS)
    await consumer.play(b"\x10" * 400 * MS)
    await take(ws, 6)
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    assert "refused_audio=1" in summaries()[0]
    assert (
        f"voiceflow refused 400 ms of speech audio callSid={call.call_sid}: 800 ms already "
        "queued (VOICEFLOW_MAX_QUEUED_AUDIO_MS=1000)"
    ) in caplog.text
    assert ("playback", "speech", 0, 800) in assistant.events


class Buggy(Assistant):
    """An assistant whose wait handling has a bug that raises a ValueError (the exception
    validation raises, too): the first wait trips it."""

    tripped = 0

    def start_wait(self, reason: str) -> None:
        if not Buggy.tripped:
            Buggy.tripped += 1
            raise ValueError("a bug, not a bad message")
        super().start_wait(reason)


async def test_a_handler_that_raises_is_a_logged_error_and_later_messages_still_arrive(
    assistant, caplog
):
    Buggy.tripped = 0
    call = SimulatedCall()
    ws = WebsocketCommunicator(build_router(consumer=Buggy), STREAM)
    assert (await ws.connect())[0]
    await send_all(ws, [call.connected(), call.start()])
    consumer = await asyncio.wait_for(Assistant.started.get(), 5)
    bad = metric("voiceflow_layer_failures_total", kind="bad_message")
    errors = metric("voiceflow_internal_errors_total", where="layer_handler")
    await wait.astart(call.call_sid, "first")
    await audio.aplay(call.call_sid, b"\x10" * 100 * MS, label="after")
    assert media_ms(await take(ws, 2)) == [100], "the message after the bug still arrives"
    await wait.astart(call.call_sid, "second")
    await audio.aplay(call.call_sid, b"\x10" * 100 * MS, label="last")
    assert media_ms(await take(ws, 2)) == [100], "the layer delivers in order: after the wait"
    assert consumer.call.wait.waits_started == 1, "the second wait went through"
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    assert metric("voiceflow_internal_errors_total", where="layer_handler") == errors + 1
    assert metric("voiceflow_layer_failures_total", kind="bad_message") == bad
    assert "voiceflow ignored layer message" not in caplog.text
    record = next(r for r in caplog.records if "layer handler" in r.getMessage())
    assert record.exc_info and "a bug, not a bad message" in str(record.exc_info[1])
    assert f"for voiceflow.wait.start raised callSid={call.call_sid}" in record.getMessage()


def test_build_router_mounts_only_consumer_subclasses(flag_on):
    with pytest.raises(TypeError, match="TwilioStreamConsumer subclass"):
        build_router(consumer=object)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("CA 1", b"\x10"), ValueError, "call_sid must be"),
        (("CA1", "text"), TypeError, "mulaw must be bytes"),
        (("CA1", b""), ValueError, "must hold some"),
        (("CA1", b"\x10" * 8 * 60_001), ValueError, "at most VOICEFLOW_MAX_QUEUED_AUDIO_MS"),
        (("CA1", b"\x10", ""), ValueError, "label must be"),
        (("CA1", b"\x10", "a\x00b"), ValueError, "label must be"),
        (("CA1", b"\x10", 7), TypeError, "label must be a str"),
    ],
)
def test_audio_api_rejects_bad_arguments(flag_on, args, error, message):
    with pytest.raises(error, match=message):
        audio.play(*args)
