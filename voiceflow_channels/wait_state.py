"""Waiting-audio state for one call: is the assistant busy, and is the thinking chime due yet.

Framework-free. "Now" comes from an injected clock (milliseconds), so tests never sleep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

DEFAULT_TRIGGER_MS = 800
DEFAULT_REPEAT_MS = 2000

log = logging.getLogger(__name__)


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class WaitState:
    """Idempotent wait transitions with one debug breadcrumb each when `debug` is on."""

    __slots__ = (
        "_clock",
        "chimes_due",
        "debug",
        "label",
        "last_chime_ms",
        "reason",
        "repeat_ms",
        "threshold_ms",
        "waiting_audio_active",
        "waiting_started_ms",
        "waits_started",
    )

    def __init__(
        self,
        threshold_ms: int = DEFAULT_TRIGGER_MS,
        clock: Callable[[], int] = monotonic_ms,
        *,
        repeat_ms: int = DEFAULT_REPEAT_MS,
        label: str = "-",
        debug: bool = False,
    ) -> None:
        self.threshold_ms = threshold_ms
        self.repeat_ms = repeat_ms
        self._clock = clock
        self.label = label
        self.debug = debug
        self.waiting_audio_active = False
        self.waiting_started_ms: int | None = None
        self.reason: str | None = None
        self.last_chime_ms: int | None = None
        self.waits_started = 0
        self.chimes_due = 0

    def notify_wait_start(self, reason: str) -> None:
        """Enter the waiting state; a start while already waiting keeps the first start time."""
        if self.waiting_audio_active:
            self._breadcrumb("start ignored (already waiting)", reason)
            return
        self.waiting_audio_active = True
        self.waiting_started_ms = self._clock()
        self.reason = reason
        self.last_chime_ms = None
        self.waits_started += 1
        self._breadcrumb("start", reason)

    def notify_wait_end(self) -> None:
        """Leave the waiting state; a no-op when not waiting."""
        if not self.waiting_audio_active:
            return
        reason = self.reason
        self.waiting_audio_active = False
        self.waiting_started_ms = None
        self.reason = None
        self._breadcrumb("end", reason)

    def ms_until_chime(self, now_ms: int | None = None) -> int | None:
        """Milliseconds until the chime is due (0 when due now); None when not waiting. The first
        is due at the threshold, each next one `repeat_ms` after the last one started."""
        if self.waiting_started_ms is None:
            return None
        now = self._clock() if now_ms is None else now_ms
        if self.last_chime_ms is None:
            return max(self.waiting_started_ms + self.threshold_ms - now, 0)
        return max(self.last_chime_ms + self.repeat_ms - now, 0)

    def chime_due(self, now_ms: int | None = None) -> bool:
        """True once the wait has lasted the threshold, and the repeat time since the last chime."""
        return self.ms_until_chime(now_ms) == 0

    def record_chime_if_due(self, now_ms: int | None = None) -> bool:
        """Record a chime starting now, if one is due; True when this call recorded it."""
        now = self._clock() if now_ms is None else now_ms
        if not self.chime_due(now):
            return False
        self.last_chime_ms = now
        self.chimes_due += 1
        self._breadcrumb("chime due", self.reason)
        return True

    def _breadcrumb(self, transition: str, reason: str | None) -> None:
        if self.debug:
            log.debug("voiceflow wait %s callSid=%s reason=%s", transition, self.label, reason)
