"""Timeouts, the stream cap, /healthz, /readyz and /metrics, through the real router and views
(the loop's clock is moved instead of sleeping)."""

from __future__ import annotations

import logging

import pytest
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from tests.utils import (
    STREAM,
    expect_server_close,
    jump_loop_clock,
    metric,
    open_stream,
    send_all,
    yield_to_loop,
)
from voiceflow_channels.routing import build_router
from voiceflow_channels.streams import STREAMS
from voiceflow_channels.testing import SimulatedCall


async def test_a_stream_that_never_starts_is_closed_counted_and_logs_one_line(
    flag_on, monkeypatch, caplog, summaries
):
    before = metric("voiceflow_timeouts_total", kind="start")
    ws = await open_stream()
    await send_all(ws, [SimulatedCall().connected()])
    jump_loop_clock(monkeypatch, 4.9)
    await yield_to_loop()
    assert await ws.receive_nothing(0.01)
    jump_loop_clock(monkeypatch, 0.2)  # 5.1 s in all
    await yield_to_loop()
    await expect_server_close(ws)
    assert metric("voiceflow_timeouts_total", kind="start") == before + 1
    assert "voiceflow closed stream callSid=-: no start within VOICEFLOW_START_TIMEOUT_S=5" in (
        caplog.text
    )
    assert summaries() == [], "a stream that never started logs no empty summary"
    assert not STREAMS.live


async def test_a_silent_stream_is_closed_after_the_idle_timeout(flag_on, monkeypatch, summaries):
    call = SimulatedCall(n=31)
    ws = await open_stream()
    await send_all(ws, [call.start(), call.media()])
    await yield_to_loop()
    for _ in range(4):  # a quarter of the 10 s timeout at a time: 4 looks see nothing new
        jump_loop_clock(monkeypatch, 2.6)
        await yield_to_loop()
    await expect_server_close(ws)
    [line] = summaries()
    assert line.startswith(f"voiceflow call ended (timeout) callSid={call.call_sid}")
    assert "frames=1" in line


async def test_frames_keep_a_stream_alive(flag_on, monkeypatch, summaries):
    call = SimulatedCall(n=32)
    ws = await open_stream()
    await send_all(ws, [call.start()])
    for _ in range(12):  # 31 s of clock, a frame every 2.6 s
        await send_all(ws, [call.media()])
        jump_loop_clock(monkeypatch, 2.6)
        await yield_to_loop()
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    assert summaries()[0].startswith("voiceflow call ended (stop)")


async def test_past_the_stream_cap_upgrades_are_refused_and_counted(flag_on, caplog):
    flag_on.VOICEFLOW_MAX_STREAMS = 1
    before = metric("voiceflow_upgrades_refused_total", reason="at_capacity")
    first = await open_stream()
    refused = WebsocketCommunicator(build_router(), STREAM)
    connected, _ = await refused.connect()
    assert not connected
    await refused.disconnect()
    assert metric("voiceflow_upgrades_refused_total", reason="at_capacity") == before + 1
    assert "at capacity (1 live streams, VOICEFLOW_MAX_STREAMS=1)" in caplog.text
    call = SimulatedCall(n=33)
    await send_all(first, [call.start(), call.media(), call.stop()])
    await expect_server_close(first)
    again = await open_stream()  # the first ended: room again
    await again.disconnect()


async def test_health_endpoints(flag_on, monkeypatch):
    client = AsyncClient()
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.content) == (200, b"ready\n")
    monkeypatch.setattr(STREAMS, "draining", True)
    draining = await client.get("/readyz")
    assert (draining.status_code, draining.content) == (503, b"draining\n")


async def test_readyz_during_a_drain_is_logged_once_at_info_not_as_a_server_error(
    flag_on, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(STREAMS, "draining", True)
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 503
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert (record.levelno, record.getMessage()) == (logging.INFO, "Draining: /readyz")
    assert record.status_code == 503


async def test_readyz_reports_a_dead_channel_layer(flag_on):
    from tests.servers import free_port

    flag_on.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]},  # nothing listens
        }
    }
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 503
    assert response.content.startswith(b"channel layer: ")


async def test_metrics_count_calls_frames_drops_and_refusals(flag_on):
    def value(text: str, name: str) -> float:
        line = next((x for x in text.splitlines() if x.startswith(name + " ")), f"{name} 0")
        return float(line.split()[-1])

    client = AsyncClient()
    before = (await client.get("/metrics")).content.decode()
    call = SimulatedCall(n=34)
    ws = await open_stream()
    await send_all(ws, [call.start(), call.media(), call.media(), "garbage", call.stop()])
    await expect_server_close(ws)
    response = await client.get("/metrics")
    assert response["Content-Type"].startswith("text/plain")
    after = response.content.decode()
    for name, grew in (
        ('voiceflow_calls_ended_total{how="stop"}', 1),
        ("voiceflow_media_frames_total", 2),
        ('voiceflow_frames_dropped_total{reason="not_json_event"}', 1),
    ):
        assert value(after, name) - value(before, name) == grew, name
    assert value(after, "voiceflow_calls_active") == value(before, "voiceflow_calls_active")


@pytest.mark.parametrize(("name", "value"), [("VOICEFLOW_IDLE_TIMEOUT_S", 0)])
def test_timeouts_must_be_positive(settings, name, value):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    setattr(settings, name, value)
    with pytest.raises(SystemCheckError, match="E001"):
        call_command("check")
