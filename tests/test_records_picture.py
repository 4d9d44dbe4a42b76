"""The call's timeline and its picture, framework-free: events with an injected clock, bounded,
saved and read back (hostile saved events dropped), and the SVG parsed for its lanes and
events."""

from __future__ import annotations

import array
import io
import wave
import xml.etree.ElementTree as ET

import pytest

from tests.utils import Clock
from voiceflow_channels.mulaw import BYTES_PER_MS, MULAW_SILENCE, mulaw_to_linear
from voiceflow_channels.playback import Clear, Mark, Media
from voiceflow_channels.records.finished import figures_of
from voiceflow_channels.records.picture import draw
from voiceflow_channels.records.tape import Tape
from voiceflow_channels.records.timeline import Event, Timeline

SVG = "{http://www.w3.org/2000/svg}"


def a_call() -> Timeline:
    clock = Clock()
    timeline = Timeline(clock)
    clock.now += 1.0
    timeline.played("greeting", 1500, 0, chime=False)  # 0 - 1.0 s... ended at 1 s: started at 0
    timeline.speech_started()
    clock.now += 0.5
    timeline.add("barge_in")
    timeline.speech_stopped()
    timeline.played("answer", 300, 700, chime=False)
    clock.now += 2.0
    timeline.tools_ran("check_order_status", 1600, failed=False)
    timeline.played("chime", 400, 200, chime=True)
    timeline.end("stop")
    return timeline


def test_events_carry_their_times_from_the_injected_clock():
    events = a_call().events
    assert [e.kind for e in events] == [
        "utterance",
        "barge_in",
        "speech",
        "utterance",
        "tool",
        "chime",
        "end",
    ]
    speech = events[2]
    assert (speech.at_ms, speech.ms) == (1000, 500)
    answer = events[3]
    assert (answer.at_ms, answer.ms, answer.cut_ms) == (1200, 300, 700), "played up to the clear"
    tool = events[4]
    assert (tool.at_ms, tool.ms, tool.label) == (1600, 1900, "check_order_status")
    assert events[-1] == Event("end", 3500, label="stop")


def test_the_timeline_is_bounded_and_keeps_its_end():
    timeline = Timeline(Clock(), max_events=3)
    for _ in range(10):
        timeline.add("barge_in")
    timeline.speech_started()
    timeline.end("hangup")
    assert len(timeline.events) == 4 and timeline.dropped == 8, "7 barge-ins and the speech"
    assert timeline.events[-1].kind == "end", "the end is kept past the bound"


def test_speech_still_going_at_the_end_is_closed_by_it():
    clock = Clock()
    timeline = Timeline(clock)
    timeline.speech_started()
    clock.now += 2
    timeline.end("stop")
    assert [(e.kind, e.ms) for e in timeline.events] == [("speech", 2000), ("end", 0)]


def test_saved_events_read_back_and_hostile_ones_are_dropped():
    saved = a_call().saved()
    assert [Event.from_saved(e) for e in saved] == a_call().events
    for hostile in (
        None,
        [],
        {"kind": "explode"},
        {"kind": "tool", "at_ms": -5},
        {"kind": "tool", "at_ms": "5"},
        {"kind": "tool", "at_ms": True},
        {"kind": "tool", "label": 7},
        {"kind": "end", "failed": "yes"},
    ):
        assert Event.from_saved(hostile) is None


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def classes(root: ET.Element, tag: str) -> list[str]:
    return [e.get("class", "") for e in root.iter(SVG + tag)]


def test_the_picture_has_its_lanes_events_and_axis():
    root = parsed(draw([(0, a_call().events)]))
    assert [g.get("data-lane") for g in root.iter(SVG + "g")] == ["caller", "assistant", "tools"]
    rects = classes(root, "rect")
    assert rects.count("played") == 2 and rects.count("cut") == 2, "the answer's and chime's cuts"
    assert rects.count("speech") == 1 and rects.count("chime") == 1 and rects.count("tool") == 1
    assert classes(root, "line").count("barge-in") == 1 and "end" in classes(root, "line")
    ticks = [t.text for t in root.iter(SVG + "text") if t.get("class") == "tick"]
    assert ticks[:4] == ["0 s", "1 s", "2 s", "3 s"]
    assert "<script" not in draw([(0, a_call().events)])


def test_the_cut_part_is_drawn_after_the_played_part_to_scale():
    events = [Event("utterance", 0, 1000, 3000, "x"), Event("end", 4000, label="stop")]
    root = parsed(draw([(0, events)]))
    played, cut = (r for r in root.iter(SVG + "rect") if r.get("class") in ("played", "cut"))
    assert float(cut.get("x")) == pytest.approx(float(played.get("x")) + float(played.get("width")))
    assert float(cut.get("width")) == pytest.approx(3 * float(played.get("width")), rel=0.01)


def test_legs_are_placed_at_their_offsets_and_labels_are_escaped():
    first = [Event("end", 1000, label="handed_over")]
    second = [
        Event("resume", 0, label="stream"),
        Event("tool", 500, 100, label="<script>", failed=True),
    ]
    svg = draw([(0, first), (5000, second)])
    root = parsed(svg)
    resume = next(e for e in root.iter(SVG + "line") if e.get("class") == "resume")
    end = next(e for e in root.iter(SVG + "line") if e.get("class") == "end")
    assert float(resume.get("x1")) > float(end.get("x1"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "tool failed" in classes(root, "rect")


def test_the_summary_lines_figures_as_numbers_without_the_identity():
    line = (
        "callSid=CA1 streamSid=MZ1 tenant=t1 from=********0001 frames=50 played_ms=1000 "
        "lag_p99_ms=- drops=bad_media:2 turns=1 response_ms_p50=420"
    )
    assert figures_of(line) == {
        "frames": 50,
        "played_ms": 1000,
        "lag_p99_ms": "-",
        "drops": "bad_media:2",
        "turns": 1,
        "response_ms_p50": 420,
    }


def test_the_tape_lays_what_was_heard_where_it_played_and_a_clear_cuts_the_rest():
    clock = Clock()
    tape = Tape(clock, max_ms=3000)
    speech, more = b"\x10" * 1000 * BYTES_PER_MS, b"\x20" * 200 * BYTES_PER_MS
    tape.record([Media(speech), Mark("a")])  # sent at once, plays for a second
    clock.now += 0.1
    tape.record([Clear()])  # 100 ms of it heard
    assert bytes(tape.heard) == speech[: 100 * BYTES_PER_MS]
    clock.now += 0.4
    tape.record([Media(more), Media(more)])  # the second plays after the first
    gap = bytes([MULAW_SILENCE]) * 400 * BYTES_PER_MS
    assert bytes(tape.heard) == speech[: 100 * BYTES_PER_MS] + gap + more + more
    for _ in range(200):
        tape.said(b"\x30" * 160)  # 4 s of the caller: kept up to the bound
    assert len(tape.caller) == 3000 * BYTES_PER_MS
    tape.record([Media(speech * 3)])
    assert len(tape.heard) == 3000 * BYTES_PER_MS


def test_the_tapes_wav_is_stereo_the_caller_left():
    tape = Tape(Clock())
    tape.said(b"\x10" * 160)
    tape.record([Media(b"\x20" * 80)])
    with wave.open(io.BytesIO(tape.wav())) as wav:
        assert (wav.getnchannels(), wav.getnframes()) == (2, 160)
        samples = array.array("h", wav.readframes(160))
    assert samples[0] == mulaw_to_linear(b"\x10")[0] and samples[1] == mulaw_to_linear(b"\x20")[0]
    assert samples[-1] == mulaw_to_linear(bytes([MULAW_SILENCE]))[0], "the shorter one padded"
