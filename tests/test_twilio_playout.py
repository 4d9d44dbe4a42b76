"""Twilio's playback of outbound audio, driven by explicit times (no sleeping)."""

from __future__ import annotations

import pytest

from voiceflow_channels.testing import TwilioPlayout

T0 = 1_000.0
FRAME = b"\x01" * 160  # 20 ms of mu-law


def ms(n: int, byte: bytes = b"\x01") -> bytes:
    """`n` ms of one mu-law byte value, 8 bytes per ms."""
    return byte * (8 * n)


def test_audio_plays_in_real_time():
    playout = TwilioPlayout(T0)
    assert playout.media(T0, ms(100)) == []
    assert playout.mark(T0, "vf1.1") == []
    assert playout.next_mark_due() == pytest.approx(T0 + 0.1)
    assert playout.advance(T0 + 0.099) == []
    assert playout.outstanding_ms(T0 + 0.05) == 50
    assert playout.advance(T0 + 0.1) == ["vf1.1"]
    assert playout.advance(T0 + 0.2) == [], "echoed once"
    assert (playout.media_ms, playout.marks_echoed) == (100, 1)


def test_marks_echo_in_order_as_their_audio_ends():
    playout = TwilioPlayout(T0)
    for i in range(3):
        playout.media(T0, ms(20))
        playout.mark(T0, f"vf1.{i}")
    assert playout.advance(T0 + 0.045) == ["vf1.0", "vf1.1"]
    assert playout.next_mark_due() == pytest.approx(T0 + 0.06)
    assert playout.media(T0 + 0.5, ms(20)) == ["vf1.2"], "media reports marks already due"
    assert playout.marks_echoed == 3


def test_a_mark_with_nothing_buffered_echoes_at_once():
    playout = TwilioPlayout(T0)
    assert playout.mark(T0, "vf1.1") == ["vf1.1"]
    playout.media(T0, ms(20))
    assert playout.mark(T0 + 0.02, "vf1.2") == ["vf1.2"], "the audio had just finished"
    assert playout.next_mark_due() is None
    assert playout.marks_echoed == 2


def test_back_to_back_media_queue_after_each_other():
    playout = TwilioPlayout(T0)
    for i in range(5):
        playout.media(T0 + 0.001 * i, FRAME)
    playout.mark(T0 + 0.005, "vf1.1")
    assert playout.outstanding_ms(T0 + 0.005) == 95
    assert playout.next_mark_due() == pytest.approx(T0 + 0.1)
    assert playout.advance(T0 + 0.1) == ["vf1.1"]
    assert playout.underruns == 0


def test_frames_sent_in_real_time_add_up_exactly():
    playout = TwilioPlayout(T0)
    for i in range(500):
        assert playout.media(T0 + 0.02 * i, FRAME) == []
    playout.mark(T0 + 9.98, "vf1.1.end")
    assert playout.advance(T0 + 10.0) == ["vf1.1.end"]
    assert playout.underruns == 0
    assert playout.max_outstanding_ms == 20


def test_clear_echoes_pending_marks_at_once_and_empties_the_buffer():
    playout = TwilioPlayout(T0, record=True)
    playout.media(T0, ms(100, b"\x01"))
    playout.mark(T0, "vf1.1")
    playout.media(T0, ms(100, b"\x02"))
    playout.mark(T0, "vf1.2.end")
    assert playout.clear(T0 + 0.05) == ["vf1.1", "vf1.2.end"]
    assert playout.outstanding_ms(T0 + 0.05) == 0
    assert playout.next_mark_due() is None
    assert playout.advance(T0 + 1) == []
    assert (playout.clears, playout.marks_echoed) == (1, 2)
    assert playout.heard() == ms(50, b"\x01"), "only what played before the clear"


def test_clear_reports_marks_already_due_first():
    playout = TwilioPlayout(T0)
    playout.media(T0, ms(20))
    playout.mark(T0, "vf1.1")
    playout.media(T0, ms(20))
    playout.mark(T0, "vf1.2")
    assert playout.clear(T0 + 0.03) == ["vf1.1", "vf1.2"]


def test_audio_after_a_clear_plays_at_once():
    playout = TwilioPlayout(T0)
    playout.media(T0, ms(1_000))
    playout.clear(T0 + 0.1)
    playout.media(T0 + 0.1, ms(20))
    playout.mark(T0 + 0.1, "vf2.1")
    assert playout.next_mark_due() == pytest.approx(T0 + 0.12)


def test_underrun_when_the_buffer_runs_dry_mid_utterance():
    playout = TwilioPlayout(T0)
    playout.media(T0, FRAME)
    playout.media(T0 + 0.03, FRAME)  # 10 ms of silence mid-utterance
    assert playout.underruns == 1
    playout.media(T0 + 0.03, FRAME)
    playout.media(T0 + 0.07, FRAME)  # exactly as the buffer ends: no gap
    assert playout.underruns == 1, "once per dry spell"
    playout.media(T0 + 0.2, FRAME)
    assert playout.underruns == 2, "a second dry spell"


def test_no_underrun_after_an_end_mark_was_reached():
    playout = TwilioPlayout(T0)
    playout.media(T0, FRAME)
    playout.mark(T0, "vf1.1.end")
    assert playout.media(T0 + 1, FRAME) == ["vf1.1.end"]
    assert playout.underruns == 0


def test_a_plain_mark_does_not_end_the_utterance():
    playout = TwilioPlayout(T0)
    playout.media(T0, FRAME)
    playout.mark(T0, "vf1.1")
    playout.media(T0 + 1, FRAME)
    assert playout.underruns == 1


def test_no_underrun_after_a_clear():
    playout = TwilioPlayout(T0)
    playout.media(T0, ms(100))
    playout.clear(T0 + 0.05)
    playout.media(T0 + 1, FRAME)
    assert playout.underruns == 0


def test_the_next_utterance_queued_behind_an_end_mark_can_underrun():
    playout = TwilioPlayout(T0)
    playout.media(T0, ms(100))
    playout.mark(T0, "vf1.1.end")
    playout.media(T0, ms(100))  # the next utterance, sent before the first has played
    assert playout.advance(T0 + 0.15) == ["vf1.1.end"]
    playout.media(T0 + 0.3, FRAME)
    assert playout.underruns == 1, "the second utterance ran dry"


def test_max_outstanding_ms_is_the_deepest_backlog():
    playout = TwilioPlayout(T0)
    assert playout.max_outstanding_ms == 0
    playout.media(T0, ms(100))
    playout.media(T0 + 0.05, ms(100))
    assert playout.max_outstanding_ms == 150
    playout.media(T0 + 0.2, ms(20))
    assert playout.max_outstanding_ms == 150
    assert playout.media_ms == 220


def test_heard_places_audio_and_silence_at_the_right_offsets():
    playout = TwilioPlayout(T0, record=True)
    playout.media(T0 + 0.01, ms(20, b"\x01"))
    playout.media(T0 + 0.05, ms(10, b"\x02"))
    playout.media(T0 + 0.05, ms(10, b"\x03"))
    silence = b"\xff"
    assert playout.heard() == (
        ms(10, silence) + ms(20, b"\x01") + ms(20, silence) + ms(10, b"\x02") + ms(10, b"\x03")
    )
    assert playout.heard(T0 + 0.02) == ms(10, silence) + ms(10, b"\x01")
    assert playout.heard(T0 + 0.1) == playout.heard() + ms(30, silence)
    assert len(playout.heard(T0 + 0.1)) == 8 * 100


def test_heard_needs_recording():
    with pytest.raises(RuntimeError, match="record=True"):
        TwilioPlayout(T0).heard()
