"""The caller's keypresses, gathered into entries for the model: an entry ends at `#`, or once
no key has come for the gap (VOICEFLOW_DTMF_GAP_MS), and is given as the caller's words ("The
caller pressed 4 2 #").

Framework-free, no I/O, an injected clock (seconds on any monotonic clock)."""

from __future__ import annotations

from collections.abc import Callable

END_KEY = "#"
# Keys in one entry, at most: an order or account number fits, a caller leaning on the keypad
# gives the model a bounded entry.
MAX_KEYS = 32


class Keypad:
    """Keys pressed since the last entry; `entries` counts the entries given."""

    def __init__(self, gap_ms: int, clock: Callable[[], float]) -> None:
        self._gap_s = gap_ms / 1000
        self._clock = clock
        self._keys: list[str] = []
        self._last = 0.0
        self.entries = 0

    def press(self, key: str) -> str | None:
        """A key: the entry's words when it ends the entry (`#`, or the MAX_KEYS-th), else None."""
        self._keys.append(key)
        self._last = self._clock()
        if key == END_KEY or len(self._keys) >= MAX_KEYS:
            return self._take()
        return None

    @property
    def due(self) -> float | None:
        """When the gap ends the entry (the clock's seconds), or None with no keys pending."""
        return self._last + self._gap_s if self._keys else None

    def lapsed(self) -> str | None:
        """The entry's words if the gap has passed since its last key, else None."""
        due = self.due
        if due is None or self._clock() < due:
            return None
        return self._take()

    def _take(self) -> str:
        words = "The caller pressed " + " ".join(self._keys)
        self._keys = []
        self.entries += 1
        return words
