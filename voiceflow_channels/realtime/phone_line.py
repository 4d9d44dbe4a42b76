"""The assistant on a real phone line: the caller's keys given to the model as words (a key
interrupts the assistant as speech does), a silent caller checked on and at last told goodbye,
a long call wrapped up. The decisions are the keypad's (`keypad`) and the patience's
(`patience`); this binds them to the loop's clock and to the assistant's session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from .. import conf, metrics
from ..call_port import CallPort
from . import patience as patience_module
from .keypad import Keypad
from .patience import Action, Patience

log = logging.getLogger("voiceflow_channels")

INSTRUCTIONS = {
    Action.CHECK_IN: (
        "The caller has said nothing for a while. Check, in one short sentence, whether they "
        "are still there, and offer to help."
    ),
    Action.GOODBYE: (
        "The caller has not answered. Say, in one short sentence, that you will hang up now "
        "and that they can call back; say goodbye."
    ),
    Action.WRAP_UP: (
        "The call has reached its time limit. Wrap up now in one or two short sentences: "
        "sum up what is left to do, if anything, and say goodbye."
    ),
}


@dataclass(frozen=True, slots=True)
class Binding:
    """The line's hold on its call and assistant, let go when the call ends (no cycle keeps
    the assistant alive): the `port`; `interrupt()`, which barges in on the assistant as the
    caller's speech does; `tell(words)`, which adds the caller's words to the conversation;
    `send` a client event; `responding()`, a response is in progress; `spawn` a coroutine for
    as long as the call."""

    port: CallPort
    interrupt: Callable[[], Awaitable[None]]
    tell: Callable[[str], Awaitable[None]]
    send: Callable[[dict[str, Any]], Awaitable[None]]
    responding: Callable[[], bool]
    spawn: Callable[[Coroutine[Any, Any, None]], None]


class PhoneLine:
    """One call's keys, silences and length, as VOICEFLOW_DTMF_TO_MODEL, _DTMF_GAP_MS,
    _IDLE_REPROMPT_MS, _IDLE_REPROMPTS and _MAX_CALL_SECONDS say."""

    def __init__(self, binding: Binding) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._bound: Binding | None = binding
        self._sid = binding.port.info.call_sid
        self._keys_to_model = conf.dtmf_to_model()
        self.keypad = Keypad(conf.dtmf_gap_ms(), loop.time)
        self.patience = Patience(
            conf.idle_reprompt_ms(), conf.idle_reprompts(), conf.max_call_seconds(), loop.time
        )
        self._wanted: list[dict[str, Any]] = []  # responses asked for while one was in progress
        self._ending_asked = False  # the goodbye's response.create was sent
        self._hung_up = False
        self._timer: asyncio.TimerHandle | None = None
        self._schedule()

    async def pressed(self, key: str) -> None:
        """A key: it interrupts the assistant, and ends an entry at `#`."""
        bound = self._bound
        if not self._keys_to_model or bound is None:
            return
        await bound.interrupt()
        self.patience.answered()
        words = self.keypad.press(key)
        if words is not None:
            await self._give(words)
        self._schedule()

    def answered(self) -> None:
        """The caller spoke."""
        self.patience.answered()
        self._schedule()

    def quiet(self, quiet: bool) -> None:
        """Nothing plays, nothing is being said or generated (see RealtimeAssistant.quiet)."""
        self.patience.quiet(quiet)
        self._schedule()

    async def response_done(self, completed: bool) -> None:
        """A response ended: a response asked for meanwhile is asked now; the goodbye, once it
        is whole, hangs up once heard."""
        bound = self._bound
        if bound is None:
            return
        if self._wanted:
            if not bound.responding():
                await bound.send(self._wanted.pop(0))
            return
        ending = self.patience.ending
        if self._ending_asked and completed and ending is not None:
            self._ending_asked = False
            await self._hang_up("idle" if ending is Action.GOODBYE else "max_call")

    def close(self) -> None:
        """The call is over: no more timers, and the call is let go."""
        self._bound = None
        self._cancel_timer()

    def summary(self) -> str:
        return f"dtmf_to_model={self.keypad.entries} idle_reprompts={self.patience.check_ins}"

    def publish(self) -> None:
        metrics.DTMF_TO_MODEL.inc(self.keypad.entries)
        metrics.IDLE_REPROMPTS.inc(self.patience.check_ins)

    async def _give(self, words: str) -> None:
        if self._bound is not None:
            await self._bound.tell(words)
            await self._ask({"type": "response.create"})

    async def _ask(self, event: dict[str, Any]) -> None:
        bound = self._bound
        if bound is None:
            return
        if bound.responding():
            self._wanted.append(event)
        else:
            await bound.send(event)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        self._cancel_timer()
        times = [t for t in (self.keypad.due, self.patience.due) if t is not None]
        if times and self._bound is not None:
            self._timer = self._loop.call_at(min(times), self._spawn_tick)

    def _spawn_tick(self) -> None:
        self._timer = None
        if self._bound is not None:
            self._bound.spawn(self._tick())

    async def _tick(self) -> None:
        words = self.keypad.lapsed()
        if words is not None:
            await self._give(words)
        action = self.patience.next()
        if action is Action.HANG_UP:
            log.info(
                "voiceflow callSid=%s: no goodbye heard within %.0f s of the wrap-up; hanging up",
                self._sid,
                patience_module.WRAP_UP_BOUND_S,
            )
            if self._bound is not None:
                await self._bound.interrupt()  # the goodbye stops where the caller is
            await self._hang_up("max_call_bound")
        elif action is not None:
            log.info("voiceflow callSid=%s: %s", self._sid, action.value)
            self._ending_asked = action is not Action.CHECK_IN
            response = {"instructions": INSTRUCTIONS[action]}
            await self._ask({"type": "response.create", "response": response})
        self._schedule()

    async def _hang_up(self, why: str) -> None:
        """Hang up once what is queued has been heard (once: a bound past a goodbye already
        whole only cuts what is left of it)."""
        if self._bound is not None and not self._hung_up:
            self._hung_up = True
            metrics.ASSISTANT_ENDINGS.labels(why).inc()
            await self._bound.port.hangup()
