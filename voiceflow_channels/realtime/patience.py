"""When the assistant speaks up on its own on a phone line: a caller silent for the idle time
after the assistant's turn was heard is checked on, and after so many check-ins without an
answer is told goodbye; a call past its length is wrapped up, and hung up if the goodbye has
not come within WRAP_UP_BOUND_S.

Framework-free, no I/O, an injected clock (seconds on any monotonic clock). The adapter says
when the call turns quiet (nothing playing, no response, the caller silent: for a spoken turn,
the moment the marks say its last audio was heard) and when the caller answers; it asks `due`
when to look next and `next()` what to do then."""

from __future__ import annotations

import enum
from collections.abc import Callable

# The most a long call goes on once it is asked to wrap up.
WRAP_UP_BOUND_S = 30.0


class Action(enum.Enum):
    CHECK_IN = "check_in"  # ask the model to check the caller is still there
    GOODBYE = "goodbye"  # the caller stayed silent: a goodbye, then the hang-up once heard
    WRAP_UP = "wrap_up"  # the call is past its length: a goodbye, then the hang-up once heard
    HANG_UP = "hang_up"  # the wrap-up's goodbye did not end the call in time: now


class Patience:
    """`idle_ms` of quiet (0: never) asks for a check-in, up to `reprompts` in a row, then a
    goodbye; `max_call_s` (0: no limit) from the start asks for a wrap-up. `check_ins` counts
    the check-ins asked for."""

    def __init__(
        self, idle_ms: int, reprompts: int, max_call_s: int, clock: Callable[[], float]
    ) -> None:
        self._idle_s = idle_ms / 1000
        self._reprompts = reprompts
        self._clock = clock
        self._limit = clock() + max_call_s if max_call_s else None
        self._quiet_since: float | None = None
        self._unanswered = 0
        self._hang_up_at: float | None = None
        self.ending: Action | None = None  # GOODBYE or WRAP_UP once asked
        self.check_ins = 0

    def quiet(self, quiet: bool) -> None:
        """The call is quiet (or not) now: the idle time counts from when it turned quiet."""
        if not quiet:
            self._quiet_since = None
        elif self._quiet_since is None:
            self._quiet_since = self._clock()

    def answered(self) -> None:
        """The caller spoke or pressed keys: the check-ins start over, and a goodbye to a silent
        caller is called off (a wrap-up is not)."""
        self._unanswered = 0
        if self.ending is Action.GOODBYE:
            self.ending = None

    @property
    def due(self) -> float | None:
        """When `next()` may have something to do, or None."""
        times = []
        if self._hang_up_at is not None:
            times.append(self._hang_up_at)
        elif self._limit is not None:
            times.append(self._limit)
        if self._idle_s and self.ending is None and self._quiet_since is not None:
            times.append(self._quiet_since + self._idle_s)
        return min(times, default=None)

    def next(self) -> Action | None:
        """What to do now, if anything; each action is given once."""
        now = self._clock()
        if self._hang_up_at is not None:
            if now < self._hang_up_at:
                return None
            self._hang_up_at = self._limit = None
            return Action.HANG_UP
        if self._limit is not None and now >= self._limit:
            self.ending = Action.WRAP_UP
            self._hang_up_at = now + WRAP_UP_BOUND_S
            return Action.WRAP_UP
        if (
            not self._idle_s
            or self.ending is not None
            or self._quiet_since is None
            or now < self._quiet_since + self._idle_s
        ):
            return None
        self._quiet_since = None
        if self._unanswered >= self._reprompts:
            self.ending = Action.GOODBYE
            return Action.GOODBYE
        self._unanswered += 1
        self.check_ins += 1
        return Action.CHECK_IN
