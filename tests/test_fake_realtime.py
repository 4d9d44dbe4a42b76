"""The fake OpenAI Realtime server: its server VAD, timed on the input clock."""

from __future__ import annotations

import math

from voiceflow_channels.mulaw import BYTES_PER_MS, MULAW_SILENCE, linear_to_mulaw
from voiceflow_channels.testing.fake_realtime.vad import EnergyVad, VadEvent


def loud(ms: int) -> bytes:
    """A caller's voice: a 300 Hz tone well over the VAD's threshold."""
    return linear_to_mulaw(
        round(8000 * math.sin(2 * math.pi * 300 * i / 8000)) for i in range(ms * BYTES_PER_MS)
    )


def silence(ms: int) -> bytes:
    return bytes([MULAW_SILENCE]) * (ms * BYTES_PER_MS)


def test_the_vad_times_speech_on_the_input_clock_whatever_the_chunk_sizes():
    vad = EnergyVad(threshold_rms=500, start_ms=60)
    audio = silence(400) + loud(40) + silence(100) + loud(300) + silence(520)
    events = []
    for start in range(0, len(audio), 333):  # odd chunks, not frames
        events += vad.feed(audio[start : start + 333], silence_ms=500, prefix_padding_ms=300)
    # 40 ms of voice is no speech; the 300 ms that follow are, from 540 ms on.
    assert events == [VadEvent("started", 540 - 300), VadEvent("stopped", 540 + 300 + 500)]
