"""The waiting-audio state machine, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import logging

from voiceflow_channels.wait_state import DEFAULT_TRIGGER_MS, WaitState


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


def test_starts_idle():
    wait = WaitState(clock=FakeClock())
    assert wait.waiting_audio_active is False
    assert wait.waiting_started_ms is None
    assert wait.threshold_ms == DEFAULT_TRIGGER_MS == 800
    assert wait.ms_until_chime() is None
    assert not wait.chime_due()


def test_chime_due_exactly_at_the_threshold():
    clock = FakeClock()
    wait = WaitState(800, clock)
    wait.notify_wait_start("llm")
    assert wait.waiting_audio_active and wait.waiting_started_ms == 1_000
    clock.now = 1_799
    assert wait.ms_until_chime() == 1 and not wait.chime_due()
    assert not wait.record_chime_if_due()
    clock.now = 1_800
    assert wait.chime_due()
    assert wait.record_chime_if_due()
    assert not wait.record_chime_if_due(), "the next one is a repeat time away"
    assert wait.chimes_due == 1


def test_the_chime_repeats_from_when_the_last_one_started():
    clock = FakeClock()
    wait = WaitState(800, clock, repeat_ms=2000)
    wait.notify_wait_start("llm")
    clock.now = 2_000  # late (something else was playing): the repeat counts from here
    assert wait.record_chime_if_due()
    assert wait.ms_until_chime() == 2000
    clock.now = 3_999
    assert not wait.record_chime_if_due()
    clock.now = 4_000
    assert wait.record_chime_if_due() and wait.chimes_due == 2
    wait.notify_wait_end()
    wait.notify_wait_start("again")
    assert wait.ms_until_chime() == 800, "a new wait starts from the threshold again"


def test_second_start_keeps_the_first_start_time_and_reason():
    clock = FakeClock()
    wait = WaitState(800, clock)
    wait.notify_wait_start("llm")
    clock.now = 1_500
    wait.notify_wait_start("tool")
    assert wait.waiting_started_ms == 1_000
    assert wait.reason == "llm"
    assert wait.waits_started == 1


def test_end_resets_and_end_when_idle_is_a_no_op():
    clock = FakeClock()
    wait = WaitState(800, clock)
    wait.notify_wait_end()
    assert not wait.waiting_audio_active
    wait.notify_wait_start("llm")
    wait.notify_wait_end()
    wait.notify_wait_end()
    assert (wait.waiting_audio_active, wait.waiting_started_ms, wait.reason) == (False, None, None)
    clock.now = 99_999
    assert not wait.chime_due() and not wait.record_chime_if_due()


def test_a_new_wait_can_chime_again():
    clock = FakeClock()
    wait = WaitState(100, clock)
    for _ in range(2):
        wait.notify_wait_start("llm")
        clock.now += 100
        assert wait.record_chime_if_due()
        wait.notify_wait_end()
    assert (wait.waits_started, wait.chimes_due) == (2, 2)


def test_zero_threshold_is_due_at_once():
    wait = WaitState(0, FakeClock())
    wait.notify_wait_start("llm")
    assert wait.chime_due()


def test_breadcrumbs_only_with_debug(caplog):
    caplog.set_level(logging.DEBUG, logger="voiceflow_channels")
    quiet = WaitState(0, FakeClock(), label="CA1")
    quiet.notify_wait_start("llm")
    quiet.record_chime_if_due()
    quiet.notify_wait_end()
    assert caplog.records == []
    loud = WaitState(0, FakeClock(), label="CA2", debug=True)
    loud.notify_wait_start("llm")
    loud.notify_wait_start("again")
    loud.record_chime_if_due()
    loud.notify_wait_end()
    assert [r.getMessage() for r in caplog.records] == [
        "voiceflow wait start callSid=CA2 reason=llm",
        "voiceflow wait start ignored (already waiting) callSid=CA2 reason=again",
        "voiceflow wait chime due callSid=CA2 reason=llm",
        "voiceflow wait end callSid=CA2 reason=llm",
    ]
