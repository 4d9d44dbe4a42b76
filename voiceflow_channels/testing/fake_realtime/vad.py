"""The fake's server VAD: speech found by energy in appended mu-law, timed on the INPUT clock.

The input clock is the audio appended so far (8 bytes a millisecond), never the wall clock: as on
OpenAI's side, `audio_start_ms` and `audio_end_ms` say where in the caller's audio a turn lies,
however fast or slow that audio arrived. No I/O: the session feeds it and sends what it answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ...mulaw import BYTES_PER_MS, FRAME_BYTES, FRAME_MS, mulaw_to_linear

# Each mu-law code's sample, squared: a frame's energy is a sum over its bytes, at C speed (a
# benchmark's fake hears every frame of hundreds of calls).
_SQUARES = tuple(sample * sample for sample in mulaw_to_linear(bytes(range(256))))


@dataclass(frozen=True)
class VadEvent:
    """Speech `started` (at `ms`, the prefix padding included) or `stopped` (at `ms`, the
    silence that ended it included), on the input clock."""

    kind: Literal["started", "stopped"]
    ms: int


class EnergyVad:
    """Voiced 20 ms frames (RMS over a threshold) for `start_ms` in a row start speech; unvoiced
    ones for the session's silence duration end it."""

    def __init__(self, threshold_rms: int, start_ms: int) -> None:
        self.threshold_rms = threshold_rms
        self.start_ms = start_ms
        self.speaking = False
        self._pending = b""  # the start of a frame not yet whole
        self._clock_ms = 0  # end of the last whole frame, on the input clock
        self._run_start_ms = 0  # where the current voiced (or unvoiced) run began
        self._run_ms = 0

    def feed(self, mulaw: bytes, silence_ms: int, prefix_padding_ms: int) -> list[VadEvent]:
        """Take appended audio; answer the speech starts and stops it completes."""
        data = self._pending + mulaw
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        events = []
        for offset in range(0, whole, FRAME_BYTES):
            event = self._frame(data[offset : offset + FRAME_BYTES], silence_ms, prefix_padding_ms)
            if event is not None:
                events.append(event)
        return events

    def reset(self) -> None:
        """Forget the audio not yet judged (the buffer was cleared); the clock runs on."""
        self._clock_ms += len(self._pending) // BYTES_PER_MS
        self._pending = b""
        self.speaking = False
        self._run_ms = 0

    def _frame(self, frame: bytes, silence_ms: int, prefix_padding_ms: int) -> VadEvent | None:
        voiced = math.sqrt(sum(map(_SQUARES.__getitem__, frame)) / len(frame)) > self.threshold_rms
        start = self._clock_ms
        self._clock_ms += FRAME_MS
        # A run counts frames of the kind that would change the state: voiced while silent,
        # unvoiced while speaking; any other frame breaks it.
        if voiced != self.speaking:
            if self._run_ms == 0:
                self._run_start_ms = start
            self._run_ms += FRAME_MS
        else:
            self._run_ms = 0
        if not self.speaking and self._run_ms >= self.start_ms:
            self.speaking, self._run_ms = True, 0
            return VadEvent("started", max(0, self._run_start_ms - prefix_padding_ms))
        if self.speaking and self._run_ms >= silence_ms:
            self.speaking, self._run_ms = False, 0
            return VadEvent("stopped", self._clock_ms)
        return None
