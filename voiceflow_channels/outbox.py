"""What one call sends Twilio, in the order playback decided it, and the chime's timer.

An adapter over `Playback` and `WaitState` (both framework-free): playback steps become Twilio
messages in an outbox that one sender at a time drains, ended utterances are reported in order
after the messages before them, and the chime is timed to play when the wait is due and nothing
else plays.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .call_state import CallState
from .mulaw import BYTES_PER_MS
from .playback import Clear, Mark, Media, Outbound, Step, Utterance
from .twilio_events import clear_message, mark_message, media_message

log = logging.getLogger("voiceflow_channels")

CHIME_LABEL = "chime"


class Outbox:
    """Sends `call.playback`'s steps through `send` (one websocket text frame each), reports each
    ended utterance to `report`, and plays `chime` while the call's wait is due.

    `send` and `report` are its consumer's methods, held weakly: the consumer holds the outbox,
    and a cycle would keep every ended call in memory until the collector's next full pass.
    Once the consumer is gone they do nothing.
    """

    def __init__(
        self,
        call: CallState,
        chime: bytes,
        send: Callable[[str], Awaitable[None]],
        report: Callable[[Utterance], Awaitable[None]],
    ) -> None:
        self.call = call
        self.chime = chime
        self._send = weakref.WeakMethod(send)
        self._report = weakref.WeakMethod(report)
        self._messages: deque[str] = deque()
        self._ended: deque[Utterance] = deque()
        self._flushing = False
        self._closed = False
        self._chime_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def play(self, label: str, mulaw: bytes, key: str | None, *, final: bool) -> None:
        """Queue audio as (part of) an utterance and send what is due; past the queue bound it
        is refused, counted and logged."""
        playback = self.call.playback
        refused = playback.refused
        self.take(playback.play(label, mulaw, key=key, final=final))
        if playback.refused != refused:
            log.warning(
                "voiceflow refused %d ms of %s audio callSid=%s: %d ms already queued "
                "(VOICEFLOW_MAX_QUEUED_AUDIO_MS=%d)",
                len(mulaw) // BYTES_PER_MS,
                label,
                self.call.call_sid,
                playback.unsettled_ms,
                playback.max_queued_ms,
            )
        await self.flush()

    def take(self, step: Step) -> None:
        """Queue a playback step's messages in order (none once closed) and its ended
        utterances for the report; `flush` sends and reports them."""
        if not self._closed:
            sid = self.call.stream_sid or ""
            self._messages.extend(_render(sid, message) for message in step.outbound)
        self._ended.extend(step.ended)

    async def flush(self) -> None:
        """Send the outbox in order, one sender at a time, then report ended utterances; then
        the chime may be due, now that nothing plays."""
        if self._flushing:
            return  # the running flush sends what was just queued, in order
        self._flushing = True
        try:
            while self._messages or self._ended:
                if self._messages:
                    message = self._messages.popleft()
                    if send := self._send():
                        await send(message)
                elif report := self._report():
                    await report(self._ended.popleft())
                else:
                    self._ended.clear()
        finally:
            self._flushing = False
        if not self._closed:
            self.arm_chime()

    def flush_soon(self) -> None:
        """Flush from a callback (a timer, a sync method): in a task of its own."""
        self.spawn(self.flush())

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in a task that `close` cancels if it is still running."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def arm_chime(self) -> None:
        """Time the next chime: only while waiting and while nothing else plays."""
        delay_ms = self.call.wait.ms_until_chime()
        if delay_ms is None or self._chime_timer is not None or not self.call.playback.idle:
            return
        if delay_ms == 0:
            self._chime_fired()
            return
        loop = asyncio.get_running_loop()
        self._chime_timer = loop.call_later(delay_ms / 1000, self._chime_fired)

    def disarm_chime(self) -> None:
        if self._chime_timer is not None:
            self._chime_timer.cancel()
            self._chime_timer = None

    def _chime_fired(self) -> None:
        self._chime_timer = None
        if self.call.playback.idle and self.call.wait.record_chime_if_due():
            self.take(self.call.playback.play(CHIME_LABEL, self.chime, filler=True))
            self.flush_soon()
        else:
            self.arm_chime()

    async def end(self) -> None:
        """The call is over: nothing more is sent (Twilio would not play it), the books close
        and every utterance still open is reported."""
        self._closed = True
        self._messages.clear()
        self.disarm_chime()
        self.take(self.call.playback.end())
        while self._ended:
            utterance = self._ended.popleft()
            if report := self._report():
                await report(utterance)

    def cancel(self) -> None:
        """Stop the timer and every task this outbox started (the consumer is going away)."""
        self._closed = True
        self.disarm_chime()
        for task in self._tasks:
            task.cancel()


def _render(stream_sid: str, message: Outbound) -> str:
    if isinstance(message, Media):
        return media_message(stream_sid, message.audio)
    if isinstance(message, Mark):
        return mark_message(stream_sid, message.name)
    assert isinstance(message, Clear)
    return clear_message(stream_sid)
