"""The conversation book, with no socket: what to clear and truncate on a barge-in, which deltas
are late, the tools wait, the call's figures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.utils import Clock
from voiceflow_channels.realtime.book import (
    Barge,
    ConversationBook,
    Delta,
    FunctionCall,
    quantile,
)

MS = 8


def book(heard: dict[str, int] | None = None, clock: Clock | None = None) -> ConversationBook:
    heard = heard if heard is not None else {}
    return ConversationBook(lambda item: heard.get(item, 0), clock or Clock())


def test_the_first_delta_of_an_item_starts_its_utterance_and_the_rest_extend_it():
    b = book()
    b.response_created("r1")
    assert b.audio_delta("r1", "i1", 1117) is Delta.START
    assert b.audio_delta("r1", "i1", 3) is Delta.MORE
    assert b.audio_delta("r1", "i2", 160) is Delta.START, "a second item is an utterance of its own"
    assert b.figures.turns == 1
    assert b.speech_started().clear, "its audio plays: a barge-in clears it"


def test_a_barge_in_truncates_the_playing_item_at_what_was_heard():
    heard = {"i1": 420}
    b = book(heard)
    b.response_created("r1")
    b.audio_delta("r1", "i1", 1000 * MS)
    assert b.speech_started() == Barge(clear=True, item_id="i1", audio_end_ms=420)
    assert b.figures.barge_ins == 1 and b.figures.truncates == 1
    assert b.speech_started() == Barge(clear=False), "nothing plays any more"


def test_the_truncate_is_clamped_to_the_audio_received_never_beyond():
    """Heard can only exceed received through a bug elsewhere, but the model answers a truncate
    past its audio with an error ("already shorter than"), so the clamp is kept."""
    b = book({"i1": 900})
    b.response_created("r1")
    b.audio_delta("r1", "i1", 500 * MS)
    assert b.speech_started().audio_end_ms == 500


def test_an_item_heard_not_at_all_is_truncated_at_zero_and_never_negative():
    b = book({"i1": -5})
    b.response_created("r1")
    b.audio_delta("r1", "i1", 100 * MS)
    assert b.speech_started() == Barge(clear=True, item_id="i1", audio_end_ms=0)


def test_an_item_with_no_audio_yet_is_never_truncated():
    """Only model audio can be truncated ("only model output audio messages can be
    truncated"): less than a millisecond received is no audio."""
    b = book()
    b.response_created("r1")
    b.audio_delta("r1", "i1", 7)
    assert b.speech_started() == Barge(clear=True)
    assert b.figures.truncates == 0


def test_speech_while_nothing_plays_clears_nothing_but_cancels_the_response_being_made():
    b = book()
    b.response_created("r1")
    assert b.speech_started() == Barge(clear=False)
    assert b.audio_delta("r1", "i1", 160) is Delta.DROP
    assert b.figures.late_audio == 1 and b.figures.barge_ins == 0


def test_every_later_delta_of_an_interrupted_response_is_dropped():
    b = book({"i1": 100})
    b.response_created("r1")
    b.audio_delta("r1", "i1", 200 * MS)
    b.speech_started()
    assert [b.audio_delta("r1", item, 160) for item in ("i1", "i1", "i2")] == [Delta.DROP] * 3
    assert b.figures.late_audio == 3
    b.response_created("r2")
    assert b.audio_delta("r2", "i3", 160) is Delta.START, "the next response plays"


def test_an_item_that_played_to_its_end_is_not_what_a_barge_in_truncates():
    b = book({"i1": 300, "i2": 40})
    b.response_created("r1")
    b.audio_delta("r1", "i1", 300 * MS)
    b.audio_delta("r1", "i2", 200 * MS)
    b.utterance_ended("i1")
    assert b.speech_started() == Barge(clear=True, item_id="i2", audio_end_ms=40)


def test_a_completed_response_with_function_calls_runs_them_and_a_cancelled_one_does_not():
    calls = [FunctionCall("c1", "check_order_status", '{"order_id": "42"}')]
    b = book()
    b.response_created("r1")
    assert b.response_done("r1", "completed", calls) is True
    assert b.current is None
    b.response_created("r2")
    assert b.response_done("r2", "cancelled", calls) is False
    assert b.audio_delta("r2", "i9", 160) is Delta.DROP
    assert b.response_done("r1", "completed", []) is False


def test_the_tools_wait_ends_at_the_first_audio_of_the_answer_only():
    b = book()
    calls = [FunctionCall("c1", "a", "{}"), FunctionCall("c2", "b", "{}")]
    b.tools_started(calls)
    assert b.tools_waiting and b.figures.tools_run == 2
    b.tool_finished(True, 0.25)
    b.tool_finished(False, 1.5)
    assert b.answer_started() is True
    assert b.answer_started() is False, "once"
    assert b.figures.tools_failed == 1 and b.figures.tool_ms == [250.0, 1500.0]


def test_latency_runs_from_speech_stopped_to_the_answers_first_audio():
    clock = Clock()
    b = book(clock=clock)
    for latency in (0.3, 0.5, 0.4):
        b.speech_stopped()
        clock.now += latency
        b.response_created(f"r{clock.now}")
        b.audio_delta(f"r{clock.now}", f"i{clock.now}", 160)
        b.audio_delta(f"r{clock.now}", f"i{clock.now}", 160)  # later deltas time nothing
    assert [round(ms) for ms in b.figures.response_ms] == [300, 500, 400]
    assert "turns=3" in b.summary() and "response_ms_p50=400 response_ms_p95=500" in b.summary()


def test_a_barge_in_before_the_answer_times_nothing():
    clock = Clock()
    b = book(clock=clock)
    b.speech_stopped()
    b.speech_started()
    b.response_created("r1")
    b.audio_delta("r1", "i1", 160)
    assert b.figures.response_ms == []


def test_the_summary_of_a_silent_call():
    assert book().summary() == (
        "turns=0 barge_ins=0 truncates=0 tools=0 tool_failures=0 "
        "response_ms_p50=- response_ms_p95=-"
    )


@pytest.mark.parametrize(
    ("samples", "q", "expected"),
    [([], 0.5, None), ([5.0], 0.95, 5.0), ([1, 2, 3, 4], 0.5, 3), ([1, 2, 3, 4], 0.95, 4)],
)
def test_quantile_is_the_nearest_rank(samples, q, expected):
    assert quantile(samples, q) == expected


@given(
    st.lists(
        st.tuples(st.sampled_from(["delta", "speech", "ended", "done"]), st.integers(0, 4000)),
        max_size=60,
    ),
    st.integers(-100, 5000),
)
def test_any_sequence_truncates_within_what_was_received_and_never_below_zero(steps, heard_ms):
    b = book({f"i{n}": heard_ms for n in range(100)})
    received: dict[str, int] = {}
    response, item = 0, 0
    b.response_created("r0")
    for kind, size in steps:
        if kind == "delta":
            if b.audio_delta(f"r{response}", f"i{item}", size) is not Delta.DROP:
                received[f"i{item}"] = received.get(f"i{item}", 0) + size
        elif kind == "speech":
            barge = b.speech_started()
            if barge.item_id is not None:
                assert 0 <= barge.audio_end_ms <= received[barge.item_id] // MS
                assert received[barge.item_id] >= MS
            response, item = response + 1, item + 1
            b.response_created(f"r{response}")
        elif kind == "ended":
            b.utterance_ended(f"i{item}")
            item += 1
        else:
            b.response_done(f"r{response}", "completed", [])
            response += 1
            b.response_created(f"r{response}")


def test_items_still_open_when_their_response_or_the_connection_ends_are_closed_once():
    b = book()
    b.response_created("r1")
    b.audio_delta("r1", "i1", 160)
    b.audio_delta("r1", "i2", 160)
    b.response_created("r2")
    b.audio_delta("r2", "i3", 160)
    assert b.audio_done("i1") is True and b.audio_done("i1") is False
    assert b.still_open("r1") == ["i2"], "i1 said done already"
    assert b.still_open() == ["i3"], "the connection dropped: every open item"
    assert b.still_open() == []
    assert b.speech_started().clear, "closed, they still play what they have"
