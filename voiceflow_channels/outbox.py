"""What one call sends Twilio, in the order playback decided it, and the chime's timer.

An adapter over `Playback` and `WaitState` (both framework-free): playback steps become Twilio
messages in an outbox that one sender at a time drains, ended utterances are reported in order
after the messages before them, the chime is timed to play when the wait is due and nothing
else plays, and a streamed utterance whose next part does not come in time is closed, so that
what follows it plays.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from . import metrics
from .call_state import CallState
from .mulaw import BYTES_PER_MS
from .playback import Clear, Mark, Media, Outbound, Step, Utterance
from .records.tape import Tape
from .tasks import spawn
from .twilio_events import clear_message, mark_message, media_message

log = logging.getLogger("voiceflow_channels")

CHIME_LABEL = "chime"


class Outbox:
    """Sends `call.playback`'s steps through `send` (one websocket text frame each), reports each
    ended utterance to `report`, plays `chime` while the call's wait is due, and closes the
    oldest open utterance once no part of it has come for `part_timeout_ms`.

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
        part_timeout_ms: int,
    ) -> None:
        self.call = call
        self.chime = chime
        self.part_timeout_ms = part_timeout_ms
        self._send = weakref.WeakMethod(send)
        self._report = weakref.WeakMethod(report)
        self._messages: deque[str] = deque()
        self._ended: deque[Utterance] = deque()
        self._flushing = False
        self._closed = False
        self._chime_timer: asyncio.TimerHandle | None = None
        # One timer for the oldest open utterance, and since when it has had no new part.
        self._part_timer: asyncio.TimerHandle | None = None
        self._awaited: Utterance | None = None
        self._awaited_parts = 0
        self._awaited_since = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.tape: Tape | None = None  # what the caller heard, for the call's record

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

    async def extend(self, key: str, mulaw: bytes, *, final: bool, part: int | None = None) -> None:
        """More of the open utterance `key` (see `Playback.extend`), and send what is due; parts
        numbered by the layer that never came are counted and logged."""
        playback = self.call.playback
        lost = playback.lost_parts
        self.take(playback.extend(key, mulaw, final=final, part=part))
        if playback.lost_parts != lost:
            metrics.LAYER_FAILURES.labels("lost_audio").inc(playback.lost_parts - lost)
            log.warning(
                "voiceflow audio parts never arrived callSid=%s utterance=%s before part %d "
                "(a channel layer over capacity drops messages: raise its capacity)",
                self.call.call_sid,
                key,
                part,
            )
        await self.flush()

    def take(self, step: Step) -> None:
        """Queue a playback step's messages in order (none once closed) and its ended
        utterances for the report; `flush` sends and reports them."""
        if not self._closed:
            sid = self.call.stream_sid or ""
            self._messages.extend(_render(sid, message) for message in step.outbound)
            if self.tape is not None:
                self.tape.record(step.outbound)
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
            self._watch_parts()

    def flush_soon(self) -> None:
        """Flush from a callback (a timer, a sync method): in a task of its own."""
        self.spawn(self.flush())

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in a task that `close` cancels if it is still running."""
        task = spawn(work)
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

    def _watch_parts(self) -> None:
        """Time the oldest open utterance (what follows waits for it): it is closed
        `part_timeout_ms` after its latest part, or after it became the oldest. One timer: a part
        only moves the deadline, and a timer that fires before the deadline is set again."""
        utterance = self.call.playback.oldest_open
        if utterance is None:
            self._disarm_parts()
            return
        loop = asyncio.get_running_loop()
        if utterance is not self._awaited or utterance.parts != self._awaited_parts:
            self._awaited, self._awaited_parts = utterance, utterance.parts
            self._awaited_since = loop.time()
        if self._part_timer is None:
            deadline = self._awaited_since + self.part_timeout_ms / 1000
            self._part_timer = loop.call_at(deadline, self._part_overdue, deadline)

    def _part_overdue(self, deadline: float) -> None:
        self._part_timer = None
        utterance = self.call.playback.oldest_open
        if (
            utterance is None
            or utterance is not self._awaited
            or utterance.parts != self._awaited_parts
            or self._awaited_since + self.part_timeout_ms / 1000 > deadline
        ):
            self._watch_parts()  # a part came or it ended since the timer was set: move it
            return
        self.call.timed_out += 1
        log.warning(
            "voiceflow closed utterance %s callSid=%s: no part of it for %.0f ms "
            "(VOICEFLOW_PART_TIMEOUT_MS=%d); what came plays, later parts are ignored",
            utterance.key,
            self.call.call_sid,
            (asyncio.get_running_loop().time() - self._awaited_since) * 1000,
            self.part_timeout_ms,
        )
        self.take(self.call.playback.close(utterance.key))
        self.flush_soon()

    def _disarm_parts(self) -> None:
        if self._part_timer is not None:
            self._part_timer.cancel()
            self._part_timer = None
        self._awaited = None

    async def end(self) -> None:
        """The call is over: nothing more is sent (Twilio would not play it), the books close
        and every utterance still open is reported."""
        self._closed = True
        self._messages.clear()
        self.disarm_chime()
        self._disarm_parts()
        self.take(self.call.playback.end())
        while self._ended:
            utterance = self._ended.popleft()
            if report := self._report():
                await report(utterance)

    def cancel(self) -> None:
        """Stop the timers and every task this outbox started (the consumer is going away)."""
        self._closed = True
        self.disarm_chime()
        self._disarm_parts()
        for task in self._tasks:
            task.cancel()


def _render(stream_sid: str, message: Outbound) -> str:
    if isinstance(message, Media):
        return media_message(stream_sid, message.audio)
    if isinstance(message, Mark):
        return mark_message(stream_sid, message.name)
    assert isinstance(message, Clear)
    return clear_message(stream_sid)
