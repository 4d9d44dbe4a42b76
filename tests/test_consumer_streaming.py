"""Streamed utterances through the real router, from the layer and in-process (`play(...,
key=, final=False)` then `play_more`): parts of any size, never silence between them, and an
utterance whose last part never comes closed in time for the next one to play.

The test plays Twilio, as in test_consumer_playback: it reads what the consumer sends and
echoes marks.
"""

from __future__ import annotations

import base64
import re

import pytest
from channels.layers import get_channel_layer

from tests.utils import (
    expect_server_close,
    jump_loop_clock,
    mark_names,
    metric,
    play_out,
    send_all,
    started,
    take,
    yield_to_loop,
)
from voiceflow_channels import audio, wait
from voiceflow_channels.consumers import TwilioStreamConsumer
from voiceflow_channels.mulaw import padding


async def hear_utterance(ws, call) -> bytes:
    """Echo each mark as it comes, until an utterance's ".end": the audio sent until then."""
    heard = bytearray()
    while True:
        [message] = await take(ws, 1)
        if message["event"] == "media":
            heard += base64.b64decode(message["media"]["payload"])
        elif message["event"] == "mark":
            await ws.send_to(text_data=call.mark(message["mark"]["name"]))
            if message["mark"]["name"].endswith(".end"):
                return bytes(heard)


def part(utterance: str, number: int, audio: bytes, *, final: bool) -> dict:
    return {
        "type": "voiceflow.audio.play",
        "utterance": utterance,
        "label": "reply",
        "part": number,
        "final": final,
        "audio": audio,
    }


async def send_part(how: str, consumer, number: int, audio_part: bytes, *, final: bool) -> None:
    """Part `number` of the utterance "lost": through the layer, or in-process."""
    if how == "layer":
        group = wait.group_name(consumer.call.call_sid)
        await get_channel_layer().group_send(group, part("lost", number, audio_part, final=final))
    elif number:
        await consumer.play_more("lost", audio_part, final=final)
    else:
        await consumer.play(audio_part, "reply", key="lost", final=final)


async def test_odd_sized_parts_from_the_layer_play_with_no_silence_between_them(
    assistant, summaries
):
    call, ws, _ = await started()
    group = wait.group_name(call.call_sid)
    parts = [bytes([n + 1]) * size for n, size in enumerate((500, 999, 1, 1234))]
    for n, audio_part in enumerate(parts):
        await get_channel_layer().group_send(
            group, part("u1", n, audio_part, final=n == len(parts) - 1)
        )
    heard = await hear_utterance(ws, call)
    said = b"".join(parts)
    assert heard == said + padding(len(said)), "the parts in order, silence only at the end"
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    assert ("playback", "reply", 360, 0) in assistant.events
    assert "played_ms=360 cleared_ms=0" in summaries()[0]


@pytest.mark.parametrize("how", ["layer", "in-process"])
async def test_an_utterance_whose_last_part_never_comes_is_closed_and_the_next_one_plays(
    assistant, summaries, caplog, monkeypatch, how
):
    call, ws, consumer = await started()
    timed_out = metric("voiceflow_utterances_timed_out_total")
    await send_part(how, consumer, 0, b"\x01" * 900, final=False)
    first = await take(ws, 2)
    await audio.aplay(call.call_sid, b"\x02" * 800, label="next")
    while consumer.playback.unsettled_ms < 220:  # 120 ms open, then 100 ms waiting behind it
        await yield_to_loop()
    assert await ws.receive_nothing(), "the next utterance waits for the open one"
    jump_loop_clock(monkeypatch, 1.5)
    assert await ws.receive_nothing(), "VOICEFLOW_PART_TIMEOUT_MS (2000, the default) is not up"
    jump_loop_clock(monkeypatch, 0.5)
    await yield_to_loop()
    assert consumer.call.timed_out == 1, "closed at its deadline"
    rest = await take(ws, 4)
    payloads = [base64.b64decode(m["media"]["payload"]) for m in rest if m["event"] == "media"]
    assert payloads == [b"\x01" * 100 + padding(100), b"\x02" * 800]
    assert [name.endswith(".end") for name in mark_names(rest)] == [True, True]
    await send_part(how, consumer, 1, b"\x01" * 160, final=True)
    while not consumer.playback.late_audio:
        await yield_to_loop()
    await play_out(ws, call, first + rest)
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    assert ("playback", "reply", 120, 0) in assistant.events
    assert ("playback", "next", 100, 0) in assistant.events
    assert "late_audio=1 lost_parts=0 timed_out=1" in summaries()[0]
    assert metric("voiceflow_utterances_timed_out_total") == timed_out + 1
    [warning] = [r.getMessage() for r in caplog.records if "closed utterance" in r.getMessage()]
    assert re.fullmatch(
        rf"voiceflow closed utterance lost callSid={call.call_sid}: no part of it for 2\d\d\d ms "
        r"\(VOICEFLOW_PART_TIMEOUT_MS=2000\); what came plays, later parts are ignored",
        warning,
    )


async def test_each_part_moves_the_deadline_of_an_open_utterance(assistant, monkeypatch):
    call, ws, consumer = await started()
    group = wait.group_name(call.call_sid)
    await get_channel_layer().group_send(group, part("slow", 0, b"\x01" * 160, final=False))
    await take(ws, 2)
    jump_loop_clock(monkeypatch, 1.5)
    await get_channel_layer().group_send(group, part("slow", 1, b"\x01" * 160, final=False))
    await take(ws, 2)
    jump_loop_clock(monkeypatch, 1.5)
    await yield_to_loop()
    assert consumer.call.timed_out == 0, "3 s since it opened, 1.5 s since its last part"
    jump_loop_clock(monkeypatch, 0.5)
    await yield_to_loop()
    assert consumer.call.timed_out == 1
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)


async def test_a_cleared_open_utterance_is_never_timed_out(assistant, monkeypatch, summaries):
    call, ws, consumer = await started()
    group = wait.group_name(call.call_sid)
    await get_channel_layer().group_send(group, part("cut", 0, b"\x01" * 160, final=False))
    await take(ws, 2)
    await consumer.clear()
    jump_loop_clock(monkeypatch, 5.0)
    await yield_to_loop()
    await send_all(ws, [call.stop()])
    assert await expect_server_close(ws) == [{"event": "clear", "streamSid": call.stream_sid}]
    assert "timed_out=0" in summaries()[0]


async def test_speech_streamed_in_process_plays_its_parts_with_no_silence_between_them(
    assistant, summaries
):
    call, ws, consumer = await started()
    parts = [bytes([n + 1]) * size for n, size in enumerate((7, 333, 160, 1001))]
    await consumer.play(parts[0], "reply", key="item_1", final=False)
    for audio_part in parts[1:]:
        await consumer.play_more("item_1", audio_part)
    await consumer.play_more("item_1", b"", final=True)
    heard = await hear_utterance(ws, call)
    said = b"".join(parts)
    assert heard == said + padding(len(said))
    while not consumer.playback.idle:  # until the consumer has handled the echoes
        await yield_to_loop()
    await consumer.play(b"\x10" * 800, "reply", key="item_2", final=False)
    await take(ws, 2)
    await consumer.clear()
    await consumer.play_more("item_2", b"\x10" * 800, final=True)  # a cancelled reply's delta
    await send_all(ws, [call.stop()])
    assert await expect_server_close(ws) == [{"event": "clear", "streamSid": call.stream_sid}]
    assert ("playback", "reply", 200, 0) in assistant.events
    assert ("playback", "reply", 0, 100) in assistant.events
    assert "late_audio=1" in summaries()[0]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((b"\x10", "reply"), {"final": False}, ValueError, "needs a key for play_more"),
        ((b"\x10", "reply"), {"key": "item 1"}, ValueError, "key must be 1-64 letters"),
        ((b"\x10", "reply"), {"key": 7}, TypeError, "key must be a str"),
        ((b"\x10", ""), {"key": "item_1"}, ValueError, "label must be"),
        (("text", "reply"), {"key": "item_1"}, TypeError, "mulaw must be bytes"),
    ],
)
async def test_play_checks_its_arguments_before_anything_is_queued(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        await TwilioStreamConsumer().play(*args, **kwargs)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("item/1", b"\x10"), ValueError, "key must be 1-64 letters"),
        (("x" * 65, b"\x10"), ValueError, "key must be 1-64 letters"),
        ((None, b"\x10"), TypeError, "key must be a str"),
        (("item_1", [1, 2]), TypeError, "mulaw must be bytes"),
    ],
)
async def test_play_more_checks_its_arguments_before_anything_is_queued(args, error, message):
    with pytest.raises(error, match=message):
        await TwilioStreamConsumer().play_more(*args)
