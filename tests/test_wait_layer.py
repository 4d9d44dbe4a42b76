"""Waits driven through the Channels layer (in-memory here), the live chime timer, and a
second stream for the same callSid."""

from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator

from tests.utils import (
    RecordingConsumer,
    expect_server_close,
    jump_loop_clock,
    metric,
    open_stream,
    send_all,
    yield_to_loop,
)
from voiceflow_channels import wait
from voiceflow_channels.routing import build_router
from voiceflow_channels.testing import SimulatedCall


async def open_recorded_stream() -> WebsocketCommunicator:
    """A stream served by `RecordingConsumer`, so that `handled` hears from it."""
    return await open_stream(build_router(consumer=RecordingConsumer))


async def started(handled, n: int):
    """A stream that has started and joined its call's group."""
    call = SimulatedCall(n=n)
    communicator = await open_recorded_stream()
    await send_all(communicator, [call.connected(), call.start(), call.media()])
    consumer, what = await asyncio.wait_for(handled.get(), 5)
    assert (consumer.call.call_sid, what) == (call.call_sid, "joined")
    return call, communicator


async def test_wait_start_and_end_reach_the_right_call_only(flag_on, handled, summaries):
    flag_on.VOICE_WAIT_SOUND_TRIGGER_MS = "60000"
    target, target_ws = await started(handled, 1)
    other, other_ws = await started(handled, 2)
    await wait.astart(target.call_sid, "llm")
    consumer, kind = await asyncio.wait_for(handled.get(), 5)
    assert kind == "voiceflow.wait.start"
    assert consumer.call.call_sid == target.call_sid
    assert consumer.call.wait.waiting_audio_active and consumer.call.wait.reason == "llm"
    await wait.aend(target.call_sid)
    consumer, kind = await asyncio.wait_for(handled.get(), 5)
    assert kind == "voiceflow.wait.end" and not consumer.call.wait.waiting_audio_active
    assert handled.empty()
    for call, ws in ((target, target_ws), (other, other_ws)):
        await send_all(ws, [call.stop()])
        await expect_server_close(ws)
    by_call = {line.split("callSid=")[1].split()[0]: line for line in summaries()}
    assert "waits=1 chimes=0" in by_call[target.call_sid]
    assert "waits=0 chimes=0" in by_call[other.call_sid]


async def test_chime_due_fires_from_the_loop_timer(flag_on, handled, summaries, monkeypatch):
    flag_on.VOICE_WAIT_SOUND_TRIGGER_MS = "60000"
    call, ws = await started(handled, 3)
    await wait.astart(call.call_sid, "llm")
    consumer, _ = await asyncio.wait_for(handled.get(), 5)
    await yield_to_loop()
    assert consumer.call.wait.chimes_due == 0
    jump_loop_clock(monkeypatch, 60.0)
    await yield_to_loop()
    assert consumer.call.wait.chimes_due == 1
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    assert "waits=1 chimes=1" in summaries()[0]


@pytest.mark.parametrize("ender", ["wait.end", "stop", "disconnect"])
async def test_chime_timer_is_cancelled(flag_on, handled, monkeypatch, ender):
    flag_on.VOICE_WAIT_SOUND_TRIGGER_MS = "60000"
    call, ws = await started(handled, 4)
    await wait.astart(call.call_sid, "llm")
    consumer, _ = await asyncio.wait_for(handled.get(), 5)
    assert consumer.outbox._chime_timer is not None
    if ender == "wait.end":
        await wait.aend(call.call_sid)
        await asyncio.wait_for(handled.get(), 5)
    elif ender == "stop":
        await send_all(ws, [call.stop()])
        assert await ws.receive_output(5) == {"type": "websocket.close"}
    else:
        await ws.disconnect()
    assert consumer.outbox._chime_timer is None
    jump_loop_clock(monkeypatch, 120.0)
    await yield_to_loop()
    assert consumer.call.wait.chimes_due == 0
    if ender != "disconnect":
        await ws.disconnect()


async def test_zero_threshold_chimes_at_once(flag_on, handled, summaries):
    flag_on.VOICE_WAIT_SOUND_TRIGGER_MS = "0"
    call, ws = await started(handled, 5)
    await wait.astart(call.call_sid, "tool")
    consumer, _ = await asyncio.wait_for(handled.get(), 5)
    assert consumer.call.wait.chimes_due == 1
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    assert "waits=1 chimes=1" in summaries()[0]


async def test_second_stream_for_the_same_call_gets_the_waits_too(flag_on, handled, summaries):
    """Twilio may reconnect a call's stream: every live stream of the callSid is told."""
    flag_on.VOICE_WAIT_SOUND_TRIGGER_MS = "60000"
    first, first_ws = await started(handled, 6)
    again = SimulatedCall(n=6)
    again.stream_sid = "MZ" + "f" * 32
    second_ws = await open_recorded_stream()
    await send_all(second_ws, [again.start(), again.media(), again.media()])
    assert (await asyncio.wait_for(handled.get(), 5))[1] == "joined"
    await wait.astart(first.call_sid, "llm")
    got = [await asyncio.wait_for(handled.get(), 5) for _ in range(2)]
    assert {c.call.stream_sid for c, _ in got} == {first.stream_sid, again.stream_sid}
    await send_all(first_ws, [first.stop()])
    await expect_server_close(first_ws)
    await wait.aend(first.call_sid)
    consumer, kind = await asyncio.wait_for(handled.get(), 5)
    assert kind == "voiceflow.wait.end"
    assert consumer.call.stream_sid == again.stream_sid, "the stopped stream left the group"
    await send_all(second_ws, [again.stop()])
    await expect_server_close(second_ws)
    first_line, second_line = summaries()
    assert "frames=1" in first_line and "waits=1" in first_line
    assert "frames=2" in second_line and "waits=1" in second_line


async def test_hostile_layer_messages_are_ignored(flag_on, handled, caplog):
    from channels.layers import get_channel_layer

    call, ws = await started(handled, 7)
    layer = get_channel_layer()
    group = wait.group_name(call.call_sid)
    await layer.group_send(group, {"type": "voiceflow.nonsense"})
    await layer.group_send(group, {"type": "websocket.receive", "text": call.media()})
    await layer.group_send(group, {"type": "websocket.disconnect", "code": 1000})
    await layer.group_send(
        wait.group_name(call.call_sid), {"type": "voiceflow.wait.start", "reason": "x\n" * 100}
    )
    consumer, _ = await asyncio.wait_for(handled.get(), 5)
    assert consumer.call.wait.reason == "unspecified"
    ignored = [r.getMessage() for r in caplog.records if "ignored layer message" in r.getMessage()]
    assert len(ignored) == 3
    assert consumer.call.frames == 1, "a websocket.* message on the layer is not a frame"
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)


@pytest.mark.parametrize("bad", ["", "CA 1", "CA1;DROP", "x" * 65, None, 5])
def test_wait_api_rejects_a_bad_call_sid(bad):
    with pytest.raises(ValueError, match="call_sid must be"):
        wait.start(bad, "llm")


def test_reasons_are_cleaned():
    assert wait.clean_reason("  llm ") == "llm"
    assert wait.clean_reason("\x1b[31m") == "unspecified"
    assert wait.clean_reason("r" * 65) == "unspecified"
    assert wait.clean_reason(None) == "unspecified"


def test_sync_api_without_a_layer_says_what_to_set(settings):
    settings.CHANNEL_LAYERS = {}
    with pytest.raises(Exception, match="CHANNEL_LAYERS"):
        wait.start("CA1", "llm")


async def test_a_dead_layer_costs_the_call_its_waits_never_the_call(flag_on, summaries, caplog):
    from tests.servers import free_port

    flag_on.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]},  # nothing listens
        }
    }
    before = metric("voiceflow_layer_failures_total", kind="join")
    call = SimulatedCall(n=8)
    ws = await open_stream()
    await send_all(ws, [call.connected(), call.start(), call.media(), call.media(), call.stop()])
    await expect_server_close(ws)
    assert metric("voiceflow_layer_failures_total", kind="join") == before + 1
    assert f"voiceflow could not join the layer callSid={call.call_sid}" in caplog.text
    assert "frames=2" in summaries()[0]
