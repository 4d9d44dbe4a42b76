"""Per-call state: counters, sequence gaps, drops with reasons, constant memory."""

from __future__ import annotations

import json
import sys

import pytest

from voiceflow_channels.call_state import CallState
from voiceflow_channels.testing import SimulatedCall
from voiceflow_channels.twilio_events import Limits


def play(state: CallState, frames) -> list[str]:
    return [state.receive_text(f) for f in frames]


def test_whole_call_counts():
    state = CallState()
    call = SimulatedCall(n=1, caller="+15551234567")
    kinds = play(state, call.whole_call(100, mark_every=40, dtmf_every=50))
    assert kinds.count("media") == 100
    assert kinds[-1] == "stop"
    assert state.counters() == {
        "frames": 100,
        "bytes": 16_000,
        "gaps": 0,
        "out_of_order": 0,
        "marks": 2,
        "dtmf": 2,
        "unknown": 0,
        "malformed": 0,
        "waits": 0,
        "chimes": 0,
        "played_ms": 0,
        "cleared_ms": 0,
        "chime_ms": 0,
        "refused_audio": 0,
        "stale_marks": 0,
        "late_audio": 0,
        "lost_parts": 0,
        "timed_out": 0,
        "hook_errors": 0,
    }
    assert (state.call_sid, state.stream_sid) == (call.call_sid, call.stream_sid)
    assert (state.tenant_id, state.from_number) == ("t1", "+15551234567")
    assert state.last_mark == "m80" and state.last_dtmf == "0"
    assert "from=********4567" in state.summary()
    assert "+15551234567" not in state.summary()


def test_sequence_gaps_count_the_missing_frames():
    state = CallState()
    call = SimulatedCall()
    play(state, [call.connected(), call.start(), call.media()])
    call.media(), call.media(), call.media()  # three frames lost on the way
    play(state, [call.media(), call.media()])
    assert state.gaps == 3
    assert state.frames == 3


def test_replayed_sequence_number_is_counted_and_tracking_resumes():
    state = CallState()
    call = SimulatedCall()
    play(state, [call.start()])
    frame = call.media()
    assert play(state, [frame, frame, call.media()]) == ["media", "media", "media"]
    assert (state.out_of_order, state.gaps, state.frames) == (1, 0, 3)


def test_one_bogus_sequence_number_cannot_poison_the_rest_of_the_call():
    state = CallState()
    call = SimulatedCall()
    play(state, [call.start(), call.media()])
    bogus = json.loads(call.media())
    bogus["sequenceNumber"] = "99999999999999999999"
    play(state, [json.dumps(bogus)])
    assert play(state, [call.media(), call.stop()]) == ["media", "stop"]
    assert state.out_of_order == 1 and state.frames == 3


def test_missing_or_non_digit_sequence_number_is_a_drop():
    state = CallState()
    call = SimulatedCall()
    play(state, [call.start()])
    for seq in (None, "", "-3", "1e3", "١٢", 7):
        frame = json.loads(call.media())
        frame["sequenceNumber"] = seq
        assert state.receive_text(json.dumps(frame)) == "drop"
    assert state.drops == {"bad_sequence": 6}


def test_drops_are_counted_by_reason_and_the_call_goes_on():
    state = CallState(limits=Limits(max_message_bytes=1000))
    call = SimulatedCall()
    play(state, [call.connected(), call.start()])
    other = SimulatedCall(n=2)
    other.start()
    frames = [
        "not json",
        "[1, 2]",
        "null",
        "x" * 1001,
        json.dumps({"event": "media"}),
        other.media(),
        call.start(),
        json.dumps({"event": "whatever"}),
    ]
    kinds = play(state, frames)
    assert kinds == ["drop"] * 7 + ["unknown"]
    assert state.drops == {"not_json_event": 3, "oversize": 1, "wrong_stream": 2, "second_start": 1}
    assert state.malformed == 7 and state.unknown == 1
    assert play(state, [call.media(), call.stop()]) == ["media", "stop"]
    assert state.call_sid == call.call_sid, "a second start never replaces the first"


def test_media_before_start_and_after_stop_are_drops():
    state = CallState()
    call = SimulatedCall()
    early = call.media()
    assert play(state, [early]) == ["drop"]
    play(state, [call.start(), call.stop()])
    assert play(state, [call.media()]) == ["drop"]
    assert state.drops == {"before_start": 1, "after_stop": 1}
    assert state.frames == 0


def test_bad_payload_mark_dtmf_are_drops_but_keep_sequence():
    state = CallState()
    call = SimulatedCall()
    play(state, [call.start()])
    bad_media = json.loads(call.media())
    bad_media["media"]["payload"] = "@@@@"
    bad_mark = json.loads(call.mark())
    bad_mark["mark"] = {"name": 5}
    bad_dtmf = json.loads(call.dtmf())
    bad_dtmf["dtmf"]["digit"] = "12"
    assert play(state, map(json.dumps, [bad_media, bad_mark, bad_dtmf])) == ["drop"] * 3
    assert state.drops == {"bad_media": 1, "bad_mark": 1, "bad_dtmf": 1}
    play(state, [call.media()])
    assert state.gaps == 0


def test_off_allowlist_parameters_are_counted():
    state = CallState()
    call = SimulatedCall()
    state.receive_text(call.start(FirstName="Jane", Tenant="evil"))
    assert state.tenant_id == "t1"
    assert state.drops == {"custom_parameter": 2}


def test_stop_ends_an_open_wait():
    state = CallState()
    call = SimulatedCall()
    play(state, [call.start()])
    state.wait.notify_wait_start("llm")
    play(state, [call.stop()])
    assert not state.wait.waiting_audio_active


def test_memory_is_constant_over_a_long_call():
    state = CallState()
    call = SimulatedCall()
    play(state, [call.connected(), call.start()])

    def footprint() -> int:
        return sum(sys.getsizeof(getattr(state, name)) for name in CallState.__slots__)

    for _ in range(100):
        state.receive_text(call.media())
    before = footprint()
    for _ in range(50_000):
        state.receive_text(call.media())
    assert state.frames == 50_100
    assert footprint() == before


@pytest.mark.parametrize(("filler", "size"), [("x", 1), ("é", 2), ("€", 3), ("😀", 4)])
def test_the_message_bound_counts_utf8_bytes_not_characters(filler, size):
    """VOICEFLOW_MAX_MESSAGE_BYTES bounds what the wire carries: 300 characters of a 3-byte
    character are 900 bytes."""
    limit = 600
    state = CallState(limits=Limits(max_message_bytes=limit))
    call = SimulatedCall()
    play(state, [call.connected(), call.start()])
    base = '{"event": "whatever", "pad": ""}'
    fits = (limit - len(base)) // size
    under = base.replace('""', '"' + filler * fits + '"')
    over = base.replace('""', '"' + filler * (fits + 1) + '"')
    assert len(under.encode()) <= limit < len(over.encode())
    assert play(state, [under, over]) == ["unknown", "drop"]
    assert state.drops == {"oversize": 1}


def test_a_lone_surrogate_is_measured_never_raised_on():
    state = CallState(limits=Limits(max_message_bytes=30))
    assert state.receive_text('{"event": "x", "p": "' + "\udc80" * 5 + '"}') == "drop"
    assert state.drops == {"oversize": 1}
