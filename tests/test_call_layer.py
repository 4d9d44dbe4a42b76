"""The layer link's retry: backing off, capped, and jittered so a process's calls do not all
re-join at the same instant after an outage."""

from __future__ import annotations

import random

from voiceflow_channels.call_layer import RETRY_MAX_SECONDS, RETRY_SECONDS, retry_delay


def test_the_retry_doubles_from_its_first_step_up_to_the_cap():
    steps = [retry_delay(failures, rng=lambda: 1.0) for failures in range(1, 8)]
    assert steps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert (RETRY_SECONDS, RETRY_MAX_SECONDS) == (0.5, 5.0)


def test_each_retry_waits_between_half_and_all_of_its_step():
    assert retry_delay(3, rng=lambda: 0.0) == 1.0
    assert retry_delay(3, rng=lambda: 0.5) == 1.5


def test_calls_that_failed_together_retry_at_spread_out_instants():
    rng = random.Random(7)
    delays = [retry_delay(1, rng=rng.random) for _ in range(200)]
    assert all(0.25 <= d <= 0.5 for d in delays)
    assert max(delays) - min(delays) > 0.2, "spread over most of the window"
    assert len(set(delays)) == 200
