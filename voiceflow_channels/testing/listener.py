"""Twilio's side of one simulated call's outbound audio, on the socket: plays what the server
sends, echoes its marks in time, and times the server's answers to the call's keypresses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import websockets
from websockets.exceptions import WebSocketException

from ..twilio_events import Limits, decode_message, parse_twilio_mark, parse_twilio_media
from .frames import text_frame, write_frames
from .results import CallResult, Sent
from .simulated_call import SimulatedCall
from .twilio_playout import TwilioPlayout

# A clear further than this from a keypress (or after the next one) answers something else.
CLEAR_WINDOW = 2.0
# A server may send a whole utterance in one media message: take up to 10 s of it.
OUTBOUND_LIMITS = Limits(max_payload_bytes=80_000)


class Listener:
    """Twilio's side of one call's outbound audio: plays what the server sends in real time (a
    TwilioPlayout on the loop's clock), echoes each mark as its audio finishes, and times the
    server's answers to the call's keypresses. A call the server never speaks to costs one
    task waiting in `recv`."""

    def __init__(
        self,
        ws: websockets.ClientConnection,
        call: SimulatedCall,
        started: float,
        keys: str,
        wait_key: str,
        record: bool,
    ) -> None:
        self.ws = ws
        self.call = call
        self.loop = asyncio.get_running_loop()
        self.playout = TwilioPlayout(started, record=record)
        self.keys = keys
        self.wait_key = wait_key
        self.pressed_at: list[float] = []
        self.received = 0
        self.malformed = 0
        self.unknown = 0
        self._waited_at: float | None = None
        self._chime_at: float | None = None
        self._clears_at: list[float] = []
        self._timer: asyncio.TimerHandle | None = None
        self._hung_up = False

    async def listen(self) -> str | None:
        """Hear every message until the server closes; why the connection failed, if it did."""
        try:
            async for message in self.ws:
                self.hear(message)
        except (OSError, WebSocketException) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def hear(self, message: str | bytes) -> None:
        """Play one server message and echo the marks due by now; count what cannot be played."""
        if self._hung_up:
            return
        now = self.loop.time()
        # Twilio reads JSON text frames only.
        d = decode_message(message) if isinstance(message, str) else None
        if d is None:
            self.malformed += 1
            return
        event = d["event"]
        if event not in ("media", "mark", "clear"):
            self.unknown += 1
            return
        due = self._play(d, event, now) if d.get("streamSid") == self.call.stream_sid else None
        if due is None:
            self.malformed += 1
            return
        self.received += 1
        self._echo(due)
        self._arm()

    def _play(self, d: dict[str, Any], event: str, now: float) -> list[str] | None:
        """The marks to echo now, or None when the message is malformed."""
        if event == "media":
            audio = parse_twilio_media(d, OUTBOUND_LIMITS)
            if audio is None:
                return None
            if self._waited_at is not None and self._chime_at is None:
                self._chime_at = now
            return self.playout.media(now, audio)
        if event == "mark":
            name = parse_twilio_mark(d)
            return None if name is None else self.playout.mark(now, name)
        self._clears_at.append(now)
        return self.playout.clear(now)

    def pressed(self, now: float, count: int) -> None:
        """The next `count` keys went out on the socket at `now`."""
        for _ in range(count):
            if self._waited_at is None and self.keys[len(self.pressed_at)] == self.wait_key:
                self._waited_at = now
            self.pressed_at.append(now)

    def hang_up(self) -> None:
        """The call's stop is going out: from now on nothing plays and nothing is echoed."""
        self._hung_up = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _echo(self, names: list[str]) -> None:
        for name in names:
            write_frames(self.ws, text_frame(self.call.mark(name)))

    def _arm(self) -> None:
        """Keep one timer, at the time the next pending mark falls due."""
        due = self.playout.next_mark_due()
        if self._timer is not None:
            if self._timer.when() == due:
                return
            self._timer.cancel()
        self._timer = None if due is None else self.loop.call_at(due, self._due)

    def _due(self) -> None:
        self._timer = None
        self._echo(self.playout.advance(self.loop.time()))
        self._arm()

    def clear_ms(self) -> tuple[float, ...] | None:
        """For each press of a key other than the wait key, ms from it to the first clear after
        it (before the next press, within CLEAR_WINDOW); None when no such key was pressed."""
        pressed = list(zip(self.pressed_at, self.keys, strict=False))
        if all(key == self.wait_key for _, key in pressed):
            return None
        answers = []
        for i, (at, key) in enumerate(pressed):
            if key == self.wait_key:
                continue
            until = at + CLEAR_WINDOW
            if i + 1 < len(pressed):
                until = min(until, pressed[i + 1][0])
            clear = next((t for t in self._clears_at if at <= t < until), None)
            if clear is not None:
                answers.append((clear - at) * 1000)
        return tuple(answers)

    def result(self, sent: Sent, error: str | None, recording: Path | None) -> CallResult:
        """The call's result: what it sent (given), what it heard and how its keys were answered."""
        playout = self.playout
        heard = self.received > 0
        return CallResult(
            self.call.n,
            self.call.call_sid,
            sent.media,
            sent.messages,
            self.ws.close_code,
            error,
            pressed=tuple(zip(self.pressed_at, self.keys, strict=False)),
            wait_to_chime_ms=(
                (self._chime_at - self._waited_at) * 1000
                if self._chime_at is not None and self._waited_at is not None
                else None
            ),
            clear_ms=self.clear_ms(),
            audio_ms=playout.media_ms if heard else None,
            underruns=playout.underruns if heard else None,
            max_outstanding_ms=playout.max_outstanding_ms if heard else None,
            clears=playout.clears if heard else None,
            marks_echoed=playout.marks_echoed if heard else None,
            malformed=self.malformed,
            unknown=self.unknown,
            recording=recording,
            held_back=sent.held_back,
            stream_sid=self.call.stream_sid,
        )
