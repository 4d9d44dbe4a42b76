"""A stream's timeouts: it must start within VOICEFLOW_START_TIMEOUT_S of its upgrade, and once
started, a frame must arrive at least every VOICEFLOW_IDLE_TIMEOUT_S. No per-frame timer: the
idle check looks at the call's frame count a few times per timeout."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

from . import conf
from .call_state import CallState

# The idle check looks at a stream this many times per VOICEFLOW_IDLE_TIMEOUT_S: a stream is
# closed between 1 and 1.25 timeouts after its last frame.
IDLE_CHECKS = 4


class Watchdog:
    """Calls `expire(kind, why)` once, when the stream has timed out: kind "start" or "idle".
    `expire` is a method of the consumer, held weakly (as the Outbox holds its callbacks)."""

    def __init__(self, call: CallState, expire: Callable[[str, str], None]) -> None:
        self.call = call
        self._expire = weakref.WeakMethod(expire)
        self._timer: asyncio.TimerHandle | None = None
        self._seen = -1
        self._quiet_checks = 0

    def await_start(self) -> None:
        """The upgrade was accepted: the start must follow within the start timeout."""
        self._watch(conf.start_timeout_s(), self._start_timed_out)

    def watch_idle(self) -> None:
        """The stream started: from now on, silence past the idle timeout ends it."""
        self._watch(conf.idle_timeout_s() / IDLE_CHECKS, self._idle_check)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _watch(self, seconds: float, check: Callable[[], None]) -> None:
        self.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, check)

    def _start_timed_out(self) -> None:
        self._timer = None
        if expire := self._expire():
            expire("start", f"no start within VOICEFLOW_START_TIMEOUT_S={conf.start_timeout_s()}")

    def _idle_check(self) -> None:
        """Has anything arrived since the last look? Four quiet looks in a row time it out."""
        self._timer = None
        seen = self.call.received
        self._quiet_checks = self._quiet_checks + 1 if seen == self._seen else 0
        self._seen = seen
        if self._quiet_checks >= IDLE_CHECKS:
            if expire := self._expire():
                expire("idle", f"no frame for VOICEFLOW_IDLE_TIMEOUT_S={conf.idle_timeout_s()}")
        else:
            self.watch_idle()
