"""The one timer that paces every real-time call of a run: 50 media frames a second per call,
the calls' turns spread over each 20 ms."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import websockets
from websockets.protocol import State

from ..mulaw import FRAME_MS
from .frames import text_frame
from .listener import Listener
from .results import Progress, Sent
from .simulated_call import Step

FRAME_SECONDS = FRAME_MS / 1000
# Real-time calls take turns over this many ticks of each 20 ms, so that their frames reach the
# server spread out, as independent calls' do, not all at once: a burst would time as lag.
TURNS = 4
TICK_SECONDS = FRAME_SECONDS / TURNS


@dataclass(slots=True)
class _Paced:
    """A call the pacer plays: its script from `step` on, and the tick of its first frame."""

    ws: websockets.ClientConnection
    listener: Listener
    sent: Sent
    steps: Iterator[Step]
    step: Step
    first: int
    # Past this many unsent bytes, send() would wait for the server to read: the pacer holds back.
    high_water: int
    done: asyncio.Future[None]


class Pacer:
    """One timer for every real-time call of a run: a tick writes the media frames due by then of
    each call whose turn it is, and the messages that follow them, in one write per call, so no
    task wakes per frame. Messages are rendered as they go out, so a mark echoed meanwhile keeps
    its place in the call's numbering."""

    def __init__(self, progress: Progress) -> None:
        self.loop = asyncio.get_running_loop()
        self.progress = progress
        # The calls of tick n are _turns[n % TURNS].
        self._turns: list[list[_Paced]] = [[] for _ in range(TURNS)]
        self._started = 0
        # Tick n runs at _origin + n * TICK_SECONDS; _next is the next to run.
        self._origin = 0.0
        self._next = 0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> float:
        """When the next call to play sends its first media frame (loop time): calls are dealt
        the turns of each 20 ms in order."""
        if self._timer is None:
            self._origin = self.loop.time()
            self._next = 0
            self._timer = self.loop.call_at(self._origin, self._tick)
        self._started += 1
        return self._origin + (self._next + self._started % TURNS) * TICK_SECONDS

    async def play(
        self,
        steps: Iterable[Step],
        ws: websockets.ClientConnection,
        listener: Listener,
        sent: Sent,
    ) -> None:
        """Play a call's script (`SimulatedCall.steps`), 50 media frames a second from the start
        `start()` gave its listener, up to its stop. The stop goes through send(), which raises
        if the connection closed meanwhile and waits while the write buffer is full."""
        first = round((listener.playout.start - self._origin) / TICK_SECONDS)
        script = iter(steps)
        paced = _Paced(
            ws,
            listener,
            sent,
            script,
            next(script),
            first,
            ws.transport.get_write_buffer_limits()[1],
            self.loop.create_future(),
        )
        self._turns[first % TURNS].append(paced)
        await paced.done
        listener.hang_up()
        await ws.send(listener.call.stop())
        sent.messages += 1

    def _tick(self) -> None:
        now = self.loop.time()
        tick = max(self._next, int((now - self._origin) / TICK_SECONDS))
        # A late tick also serves the turns it ran late for, with every frame due by now, so that
        # one late tick delays no frame further.
        for n in range(max(self._next, tick - TURNS + 1), tick + 1):
            turn = n % TURNS
            self._turns[turn] = [p for p in self._turns[turn] if self._send(p, tick, now)]
        self._next = tick + 1
        self._timer = (
            self.loop.call_at(self._origin + self._next * TICK_SECONDS, self._tick)
            if any(self._turns)
            else None
        )

    def _send(self, paced: _Paced, tick: int, now: float) -> bool:
        """Write the call's messages due by `tick`; False once it has no more for the pacer:
        its stop is next, its connection closed, or its play was cancelled."""
        ws, sent = paced.ws, paced.sent
        if paced.done.done():
            return False
        if ws.state is not State.OPEN:
            paced.done.set_result(None)
            return False
        transport = ws.transport
        if transport.get_write_buffer_size() > paced.high_water:
            # The server has not read what was sent: its frames wait and show as its lag, and
            # are counted here, instead of piling up in this process.
            sent.held_back += 1
            return True
        due = (tick - paced.first) // TURNS + 1
        frames = []
        media = presses = 0
        step = paced.step
        while step.kind != "stop":
            if step.kind == "media":
                if sent.media + media == due:
                    break
                media += 1
            elif step.kind == "press":
                presses += 1
            frames.append(text_frame(step.render()))
            step = next(paced.steps)
        paced.step = step
        if presses:
            # Written below, before anything else runs: this is when the keys go out.
            paced.listener.pressed(now, presses)
        if frames:
            transport.write(b"".join(frames))
        sent.media += media
        sent.messages += len(frames)
        self.progress.media_frames += media
        if step.kind == "stop":
            paced.done.set_result(None)
            return False
        return True
