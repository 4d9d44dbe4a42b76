"""The example's assistant, with no AI: the chime, barge-in and ending a call on a call you can
place.

Press 1: the assistant "thinks" for DEMO_WAIT_MS (the chime plays once the wait has lasted
VOICE_WAIT_SOUND_TRIGGER_MS, and repeats), then speaks a short synthesised answer. Press * while
it thinks: it answers at once. Press # while it speaks: barge-in, the answer is cleared. Press 9:
a short goodbye, then it hangs up once the goodbye has been heard. Press 0: it transfers the call
to DEMO_TRANSFER_TO (which must be on VOICEFLOW_TRANSFER_ALLOWLIST).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Iterable

from django.conf import settings

from voiceflow_channels.consumers import TwilioStreamConsumer
from voiceflow_channels.destinations import masked
from voiceflow_channels.mulaw import SAMPLE_RATE, linear_to_mulaw

log = logging.getLogger("voiceflow_channels")

# The "answer": a rising phrase of five notes, 2 s, easy to tell from the chime when listening.
ANSWER_NOTES = (392.0, 440.0, 493.88, 523.25, 587.33)
# The "goodbye": three falling notes, 1.2 s.
GOODBYE_NOTES = (587.33, 493.88, 392.0)
NOTE_SECONDS = 0.4


def phrase(notes: Iterable[float]) -> bytes:
    samples = []
    for freq in notes:
        count = int(NOTE_SECONDS * SAMPLE_RATE)
        for i in range(count):
            envelope = min(i, count - i, 200) / 200  # 25 ms ramps: no clicks between notes
            t = i / SAMPLE_RATE
            tone = math.sin(2 * math.pi * freq * t) + 0.3 * math.sin(4 * math.pi * freq * t)
            samples.append(round(6000 * envelope * tone))
    return linear_to_mulaw(samples)


@functools.cache
def answer() -> bytes:
    return phrase(ANSWER_NOTES)


@functools.cache
def goodbye() -> bytes:
    return phrase(GOODBYE_NOTES)


class DemoConsumer(TwilioStreamConsumer):
    """1: wait, then answer; *: answer now; #: clear (barge-in); 9: goodbye and hang up;
    0: transfer to DEMO_TRANSFER_TO."""

    _answering: asyncio.Task | None = None

    async def on_dtmf(self, digit: str) -> None:
        waiting = self.call.wait.waiting_audio_active
        if digit == "1" and not waiting:
            self.start_wait("demo")
            self._answering = asyncio.create_task(self._answer_after(settings.DEMO_WAIT_MS))
        elif digit == "*" and waiting:
            self._cancel()
            await self._answer()
        elif digit == "#":
            await self.clear()
        elif digit == "9":
            self._cancel()
            await self.play(goodbye(), "goodbye")
            await self.hangup()
        elif digit == "0" and settings.DEMO_TRANSFER_TO:  # unset: 0 is just a key
            await self._transfer(settings.DEMO_TRANSFER_TO)

    async def on_stop(self) -> None:
        self._cancel()

    async def _answer_after(self, ms: int) -> None:
        await asyncio.sleep(ms / 1000)
        await self._answer()

    async def _answer(self) -> None:
        self.end_wait()
        await self.play(answer(), "answer")

    async def _transfer(self, to: str) -> None:
        try:
            await self.transfer(to)
        except ValueError as exc:  # not allowlisted: the call goes on
            log.warning("voiceflow demo: no transfer to %s: %s", masked(to), exc)

    def _cancel(self) -> None:
        if self._answering is not None:
            self._answering.cancel()
