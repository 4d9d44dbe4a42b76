"""The phone line's rules on their own, on a clock the test moves: keys gathered into entries
(`keypad`), and when a silent caller is checked on, told goodbye, and a long call wrapped up
and at last hung up (`patience`)."""

from __future__ import annotations

import pytest

from tests.utils import Clock
from voiceflow_channels.realtime.keypad import MAX_KEYS, Keypad
from voiceflow_channels.realtime.patience import WRAP_UP_BOUND_S, Action, Patience


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_keys_are_one_entry_ended_by_the_hash_key(clock):
    keypad = Keypad(1500, clock)
    assert keypad.press("4") is None
    clock.now += 1.4
    assert keypad.press("2") is None
    assert keypad.press("#") == "The caller pressed 4 2 #"
    assert keypad.due is None and keypad.lapsed() is None
    assert keypad.entries == 1


def test_keys_end_an_entry_after_the_gap_since_the_last_key(clock):
    keypad = Keypad(1500, clock)
    keypad.press("1")
    clock.now += 1.0
    keypad.press("*")
    assert keypad.due == pytest.approx(clock.now + 1.5), "the gap counts from the last key"
    clock.now += 1.499
    assert keypad.lapsed() is None
    clock.now += 0.001
    assert keypad.lapsed() == "The caller pressed 1 *"
    assert keypad.lapsed() is None, "an entry is given once"
    assert keypad.entries == 1


def test_a_caller_leaning_on_the_keypad_gives_bounded_entries(clock):
    keypad = Keypad(1500, clock)
    entries = [e for e in (keypad.press("7") for _ in range(MAX_KEYS * 2 + 3)) if e]
    assert entries == ["The caller pressed " + " ".join(["7"] * MAX_KEYS)] * 2
    clock.now += 2
    assert keypad.lapsed() == "The caller pressed 7 7 7"


def test_silence_counts_from_when_the_call_turned_quiet_not_before(clock):
    patience = Patience(8000, 2, 0, clock)
    clock.now += 60  # the assistant's turn played all this while: the call was not quiet
    assert patience.due is None and patience.next() is None
    patience.quiet(True)  # its last mark echoed: heard now
    assert patience.due == clock.now + 8
    clock.now += 7.9
    patience.quiet(True)  # still quiet: the time keeps counting from when it turned quiet
    assert patience.next() is None
    clock.now += 0.1
    assert patience.next() is Action.CHECK_IN
    assert patience.due is None, "the next silence counts once the check-in has been heard"


def test_the_caller_answering_starts_the_check_ins_over(clock):
    patience = Patience(1000, 2, 0, clock)
    actions = []
    for answer_after in (False, True, False, False, False):
        patience.quiet(True)
        clock.now += 1
        actions.append(patience.next())
        patience.quiet(False)  # the check-in (or the goodbye) speaks
        if answer_after:
            patience.answered()
    assert actions == [
        Action.CHECK_IN,
        Action.CHECK_IN,
        Action.CHECK_IN,
        Action.CHECK_IN,
        Action.GOODBYE,
    ]
    assert patience.check_ins == 4 and patience.ending is Action.GOODBYE
    patience.quiet(True)
    clock.now += 10
    assert patience.next() is None, "one goodbye: nothing more is asked"


def test_a_caller_who_answers_the_goodbye_is_not_hung_up_on(clock):
    patience = Patience(1000, 0, 0, clock)
    patience.quiet(True)
    clock.now += 1
    assert patience.next() is Action.GOODBYE
    patience.answered()
    assert patience.ending is None


def test_no_idle_time_means_no_check_ins(clock):
    patience = Patience(0, 2, 0, clock)
    patience.quiet(True)
    clock.now += 3600
    assert patience.due is None and patience.next() is None


def test_a_long_call_is_wrapped_up_then_hung_up_within_the_bound(clock):
    patience = Patience(8000, 2, 1800, clock)
    assert patience.due == clock.now + 1800
    clock.now += 1800
    assert patience.next() is Action.WRAP_UP
    patience.answered()
    assert patience.ending is Action.WRAP_UP, "answering does not call a wrap-up off"
    patience.quiet(True)
    assert patience.due == clock.now + WRAP_UP_BOUND_S, "no check-in once wrapping up"
    clock.now += WRAP_UP_BOUND_S - 0.1
    assert patience.next() is None
    clock.now += 0.1
    assert patience.next() is Action.HANG_UP
    assert patience.due is None and patience.next() is None, "the hang-up is given once"


def test_no_call_length_means_no_wrap_up(clock):
    patience = Patience(0, 2, 0, clock)
    clock.now += 86400
    assert patience.due is None and patience.next() is None
