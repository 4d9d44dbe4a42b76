"""A call's audio for its record (VOICEFLOW_RECORD_AUDIO): what the caller said and what they
heard, one stereo WAV (the caller left, the assistant right), 16-bit PCM at 8 kHz.

Framework-free, an injected clock. The caller's frames are laid end to end (Twilio sends one
every 20 ms, silence included); what was sent to the caller is laid where it played: after what
was already playing, from the moment it was sent, and a clear cuts what had not played yet.
Bounded: past `max_ms` of call nothing more is kept."""

from __future__ import annotations

import array
import io
import time
import wave
from collections.abc import Callable, Iterable

from ..mulaw import BYTES_PER_MS, MULAW_SILENCE, SAMPLE_RATE, mulaw_to_linear
from ..playback import Clear, Media, Outbound

# Half an hour a leg: 28.8 MB of mu-law held until the leg ends, at most.
MAX_MS = 30 * 60 * 1000


class Tape:
    """`said` each inbound frame, `record` what playback sends; `wav()` (slow: off the loop)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_ms: int = MAX_MS) -> None:
        self._clock = clock
        self._start = clock()
        self._max = max_ms * BYTES_PER_MS
        self.caller = bytearray()
        self.heard = bytearray()
        self._heard_end = 0  # where the next audio sent starts playing, in bytes

    def _now(self) -> int:
        return max(round((self._clock() - self._start) * 1000), 0) * BYTES_PER_MS

    def said(self, mulaw: bytes) -> None:
        """One inbound frame."""
        if len(self.caller) < self._max:
            self.caller += mulaw

    def sent(self, mulaw: bytes) -> None:
        """Audio sent to the caller: it plays once what was sent before it has."""
        at = max(self._heard_end, self._now())
        end = min(at + len(mulaw), self._max)
        if end <= at:
            return
        if len(self.heard) < at:
            self.heard += bytes([MULAW_SILENCE]) * (at - len(self.heard))
        self.heard[at:end] = mulaw[: end - at]
        self._heard_end = end

    def record(self, outbound: Iterable[Outbound]) -> None:
        """What playback sends Twilio: its audio, and its clears."""
        for message in outbound:
            if isinstance(message, Media):
                self.sent(message.audio)
            elif isinstance(message, Clear):
                self.cleared()

    def cleared(self) -> None:
        """A clear: what was sent and had not played yet never will."""
        now = self._now()
        del self.heard[now:]
        self._heard_end = min(self._heard_end, now)

    def wav(self) -> bytes:
        size = max(len(self.caller), len(self.heard))
        left = mulaw_to_linear(bytes(self.caller.ljust(size, bytes([MULAW_SILENCE]))))
        right = mulaw_to_linear(bytes(self.heard.ljust(size, bytes([MULAW_SILENCE]))))
        both = array.array("h", bytes(4 * size))
        both[0::2] = left
        both[1::2] = right
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes(both.tobytes())
        return out.getvalue()
