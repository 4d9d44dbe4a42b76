"""A call the assistant is ending (a hang-up or a transfer): it waits until the caller has heard
everything queued, by Twilio's mark echoes, and gives up waiting only when the echoes stall."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable

from .playback import Playback

# Twilio echoes a mark every VOICEFLOW_MARK_EVERY_MS of audio it plays: this long with audio
# unheard and no echo means they will not come (a stalled or dying stream), and the call ends.
STALL_SECONDS = 3.0


class CallEnding:
    """`how` the call ends ("hangup", "transfer") and `record`, which writes the instruction
    Twilio's `<Connect action>` will find; `stalled` (a method of the consumer, held weakly, as
    the Outbox holds its callbacks) is called if the echoes stop first."""

    def __init__(
        self,
        how: str,
        record: Callable[[str], Awaitable[None]],
        playback: Playback,
        stalled: Callable[[], None],
    ) -> None:
        self.how = how
        self.record = record
        self._playback = playback
        self._stalled = weakref.WeakMethod(stalled)
        self._started = False
        self._played_ms = playback.played_ms
        self._timer = asyncio.get_running_loop().call_later(STALL_SECONDS, self._check)

    def heard(self) -> bool:
        """Everything queued has been heard (or cleared): nothing is left to wait for."""
        return self._playback.idle

    def start(self) -> bool:
        """True the first time only: the ending is carried out once."""
        started, self._started = self._started, True
        self.cancel()
        return not started

    def cancel(self) -> None:
        self._timer.cancel()

    def _check(self) -> None:
        if self._playback.played_ms == self._played_ms:
            if stalled := self._stalled():
                stalled()
            return
        self._played_ms = self._playback.played_ms
        self._timer = asyncio.get_running_loop().call_later(STALL_SECONDS, self._check)
