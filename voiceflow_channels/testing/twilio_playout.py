"""Twilio's side of a stream's outbound audio, as the call simulator plays it.

Framework-free. Every method takes `now` (float seconds, any monotonic clock), so tests never
sleep. Time is kept in whole samples of 8 kHz mu-law (one byte each) from `start`, so 20 ms
frames add up exactly and a mark falls due at the very sample its audio ends.
"""

from __future__ import annotations

from collections import deque

from ..mulaw import BYTES_PER_MS, MULAW_SILENCE, SAMPLE_RATE
from ..playback import END_SUFFIX

# What the caller hears while nothing plays.
SILENCE = bytes([MULAW_SILENCE])


class TwilioPlayout:
    """Plays `media` in real time, echoes each `mark` when the audio before it has played,
    and empties the buffer on `clear`, counting underruns, clears and the deepest backlog."""

    __slots__ = (
        "_between_utterances",
        "_end",
        "_heard",
        "_marks",
        "clears",
        "marks_echoed",
        "max_outstanding_ms",
        "media_ms",
        "start",
        "underruns",
    )

    def __init__(self, start: float, record: bool = False) -> None:
        self.start = start
        self.underruns = 0
        self.max_outstanding_ms = 0.0
        self.clears = 0
        self.media_ms = 0.0
        self.marks_echoed = 0
        # Sample at which everything buffered has played (in the past once the buffer ran dry).
        self._end = 0
        self._marks: deque[tuple[int, str]] = deque()
        self._between_utterances = True
        # The whole timeline up to `_end`, only when recording: memory grows with the call.
        self._heard: bytearray | None = bytearray() if record else None

    def media(self, now: float, audio: bytes) -> list[str]:
        """Queue `audio` after what is buffered; returns the marks to echo now."""
        due = self.advance(now)
        pos = self._sample(now)
        # A dry spell is an underrun only inside an utterance: after its ".end" mark or a clear
        # the silence is a pause the server meant.
        if self._end < pos and not self._between_utterances:
            self.underruns += 1
        if self._heard is not None:
            self._heard += SILENCE * (pos - self._end)
            self._heard += audio
        self._end = max(self._end, pos) + len(audio)
        self._between_utterances = False
        self.media_ms += len(audio) / BYTES_PER_MS
        self.max_outstanding_ms = max(self.max_outstanding_ms, self.outstanding_ms(now))
        return due

    def mark(self, now: float, name: str) -> list[str]:
        """Queue mark `name` after what is buffered; returns the marks to echo now."""
        due = self.advance(now)
        # In stream order, so that audio sent after an ".end" mark opens the next utterance
        # even while the mark is still pending.
        if name.endswith(END_SUFFIX):
            self._between_utterances = True
        if self._end > self._sample(now):
            self._marks.append((self._end, name))
        else:
            due.append(name)
            self.marks_echoed += 1
        return due

    def clear(self, now: float) -> list[str]:
        """Drop what has not played yet; returns every pending mark, to echo at once."""
        due = self.advance(now)
        pos = self._sample(now)
        if self._heard is not None:
            del self._heard[pos:]
        self._end = min(self._end, pos)
        due.extend(name for _, name in self._marks)
        self.marks_echoed += len(self._marks)
        self._marks.clear()
        self._between_utterances = True
        self.clears += 1
        return due

    def advance(self, now: float) -> list[str]:
        """The pending marks whose audio has finished playing by `now`, in order."""
        pos = self._sample(now)
        due = []
        while self._marks and self._marks[0][0] <= pos:
            due.append(self._marks.popleft()[1])
        self.marks_echoed += len(due)
        return due

    def next_mark_due(self) -> float | None:
        """When the earliest pending mark falls due; None when no mark is pending."""
        if not self._marks:
            return None
        return self.start + self._marks[0][0] / SAMPLE_RATE

    def outstanding_ms(self, now: float) -> float:
        """Audio received but not yet played at `now`."""
        return max(self._end - self._sample(now), 0) / BYTES_PER_MS

    def heard(self, now: float | None = None) -> bytes:
        """What the caller heard from `start`, as mu-law: up to `now`, or to the end of the
        buffer when `now` is None. Audio a clear dropped was never heard."""
        if self._heard is None:
            raise RuntimeError("heard() needs a recording: TwilioPlayout(start, record=True)")
        if now is None:
            return bytes(self._heard)
        pos = self._sample(now)
        return bytes(self._heard[:pos]) + SILENCE * (pos - len(self._heard))

    def _sample(self, now: float) -> int:
        # Rounded, not floored: 0.1 s is 799.9999... samples in floating point.
        return round((now - self.start) * SAMPLE_RATE)
