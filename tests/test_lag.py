"""Inbound lag against Twilio's media.timestamp, with explicit arrival times."""

from __future__ import annotations

from voiceflow_channels.call_state import CallState
from voiceflow_channels.lag import BOUNDS_MS, InboundLag
from voiceflow_channels.testing import SimulatedCall


def test_frames_on_time_have_no_lag_whatever_the_clock_offset():
    lag = InboundLag()
    for i in range(100):
        lag.record(i * 20, 5_000.0 + i * 20)
    assert lag.quantile(0.99) == 1 and lag.frames == 100


def test_lag_is_measured_from_the_calls_best_frame():
    lag = InboundLag()
    lag.record(0, 1000.0)  # best so far: offset 1000
    lag.record(20, 1050.0)  # 30 ms late
    lag.record(40, 1060.0)  # 20 ms late
    lag.record(60, 1059.0)  # early: the new best (offset 999); itself 0 late
    assert lag.counts[BOUNDS_MS.index(30)] == 1 and lag.counts[BOUNDS_MS.index(20)] == 1
    assert lag.quantile(0.5) == 1 and lag.quantile(0.75) == 20 and lag.quantile(1.0) == 30


def test_a_p99_sees_the_slow_one_percent():
    lag = InboundLag()
    for i in range(1000):
        late = 95 if i % 50 == 0 else 0  # 2% of frames 95 ms late
        lag.record(i * 20, i * 20 + late)
    assert lag.quantile(0.97) == 1
    assert lag.quantile(0.99) == 100


def test_no_frames_no_quantile_and_huge_lag_is_bounded():
    lag = InboundLag()
    assert lag.quantile(0.99) is None
    lag.record(0, 0.0)
    lag.record(20, 60_020.0)
    assert lag.quantile(1.0) == 2 * BOUNDS_MS[-1]


def test_call_state_records_each_media_frame_with_its_clock():
    now = [0.0]
    state = CallState(clock=lambda: now[0] / 1000)  # seconds, as loop.time
    call = SimulatedCall()
    state.receive_text(call.start())
    for i in range(1, 101):
        now[0] = i * 20 + (45 if i == 50 else 0)
        state.receive_text(call.media())
    assert state.lag.frames == 100
    assert state.lag.quantile(1.0) == 60  # the one 45 ms late frame
    assert "lag_p99_ms=1 " in state.summary(), "one late frame in 100 is the last 1%"


def test_a_frame_without_a_timestamp_is_counted_but_not_timed():
    state = CallState(clock=lambda: 0.0)
    call = SimulatedCall()
    state.receive_text(call.start())
    frame = call.media().replace('"timestamp"', '"stamp"')
    assert state.receive_text(frame) == "media"
    assert state.frames == 1 and state.lag.frames == 0
    assert "lag_p99_ms=-" in state.summary()
