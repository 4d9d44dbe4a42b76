"""Barge-ins that were blips: the "speech" that stopped the assistant lasted less than
VOICEFLOW_MIN_BARGE_IN_MS and left no words (a cough, a door, line noise the VAD took for
speech). Counted, so the turn detection and noise reduction can be tuned from the figures.

Framework-free, no I/O. Times are the VAD's, on the input clock: its `audio_start_ms` includes
the prefix padding and its `audio_end_ms` the silence that ended the speech, both taken off.
"""

from __future__ import annotations

from collections import OrderedDict

# Short barge-ins waiting for their transcript: transcripts come in order, a few turns late at
# most; past this the oldest is forgotten (not counted).
MAX_WAITING = 8


class FalseBargeIns:
    """`count` the barge-ins shorter than `min_ms` with no transcript (with `transcribed`
    False, no transcript ever comes: the length alone decides)."""

    def __init__(self, min_ms: int, padding_ms: int, silence_ms: int, transcribed: bool) -> None:
        self.count = 0
        self._min_ms = min_ms
        self._overhead_ms = padding_ms + silence_ms
        self._transcribed = transcribed
        self._barge: tuple[str, int] | None = None  # the speech item that barged in, its start
        self._waiting: OrderedDict[str, None] = OrderedDict()

    def barged_in(self, item_id: str, audio_start_ms: int) -> None:
        """The caller's speech (the item it will become) stopped the assistant."""
        self._barge = (item_id, audio_start_ms)

    def speech_stopped(self, item_id: str, audio_end_ms: int) -> None:
        barge, self._barge = self._barge, None
        if barge is None or barge[0] != item_id:
            return
        if audio_end_ms - barge[1] - self._overhead_ms >= self._min_ms:
            return
        if not self._transcribed:
            self.count += 1
            return
        self._waiting[item_id] = None
        while len(self._waiting) > MAX_WAITING:
            self._waiting.popitem(last=False)

    def transcribed(self, item_id: str, text: str | None) -> None:
        """The item's transcript: a short barge-in that said nothing was a blip."""
        if item_id in self._waiting:
            del self._waiting[item_id]
            if not (text or "").strip():
                self.count += 1
