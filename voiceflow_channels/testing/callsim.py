"""Plays Twilio-shaped calls at a Media Streams websocket and reports what it sent and how long.

Framework-free (asyncio and websockets): the `voiceflow_callsim` command and the benchmarks drive
it. Every call connects first, then all of them play at once, so the server holds every call open.
In real time one timer paces every call (a `Pacer`), so that the simulator costs a fraction of the
server it measures on the same machine.
Each call also plays Twilio's side of the server's outbound audio (a `Listener`): it plays `media`
in real time, echoes each `mark` when the audio before it has played, empties its buffer on
`clear`, and times the server's answers to the keys the call presses.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import websockets
from websockets.exceptions import InvalidURI, WebSocketException
from websockets.frames import Frame, Opcode, apply_mask
from websockets.protocol import State
from websockets.uri import parse_uri

from ..chime import write_wav
from ..mulaw import FRAME_MS
from ..twilio_events import Limits, decode_message, parse_twilio_mark, parse_twilio_media
from .simulated_call import SimulatedCall, Step
from .twilio_playout import TwilioPlayout

# One mark every 2 s and one keypress every 2.5 s of audio: rare, as on a real call.
MARK_EVERY = 100
DTMF_EVERY = 125
FRAMES_PER_SECOND = 1000 // FRAME_MS
FRAME_SECONDS = FRAME_MS / 1000
# Real-time calls take turns over this many ticks of each 20 ms, so that their frames reach the
# server spread out, as independent calls' do, not all at once: a burst would time as lag.
TURNS = 4
TICK_SECONDS = FRAME_SECONDS / TURNS
# Handshakes in flight at once: a burst of SYNs larger than the server's listen backlog would be
# dropped and retried a second later by the kernel, which would time the backlog, not the server.
CONNECT_CONCURRENCY = 32
OPEN_TIMEOUT = 30
MAX_CALLS = 20_000
MAX_SECONDS = 3_600
# Flat-out, messages go in batches of about a second of one call's audio, one write each.
FLAT_OUT_BATCH = 50
# Up to this many media frames in all (about 400 bytes each), a flat-out run renders every frame
# before the first connect, so the client's own JSON and framing stay out of the timing.
PRERENDER_FRAMES = 500_000
KEYS = "0123456789*#ABCD"
# A text frame's header from the client, for 126 bytes to 64 KiB: FIN and opcode, mask bit and the
# 16-bit length marker, the length.
_TEXT_HEAD = struct.Struct("!BBH")
DEFAULT_WAIT_KEY = "1"
# A clear further than this from a keypress (or after the next one) answers something else.
CLEAR_WINDOW = 2.0
# A server may send a whole utterance in one media message: take up to 10 s of it.
OUTBOUND_LIMITS = Limits(max_payload_bytes=80_000)


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one call sent, and how it ended: the server closing it after `stop` is success.

    And what it heard. `pressed`: each key and when it went out on the socket (loop time). The
    playout figures are None when the server sent the call nothing to play (no media, mark or
    clear); `wait_to_chime_ms` is None without a press of the wait key and media after it;
    `clear_ms` (one entry per other keypress a clear answered) is None without such a press.
    `malformed` and `unknown` count the server messages the call could not play. `held_back`
    counts the real-time ticks the call's due frames waited for the server to read what was sent.
    """

    n: int
    call_sid: str
    media_frames: int
    messages: int
    close_code: int | None
    error: str | None
    pressed: tuple[tuple[float, str], ...] = ()
    wait_to_chime_ms: float | None = None
    clear_ms: tuple[float, ...] | None = None
    audio_ms: float | None = None
    underruns: int | None = None
    max_outstanding_ms: float | None = None
    clears: int | None = None
    marks_echoed: int | None = None
    malformed: int = 0
    unknown: int = 0
    recording: Path | None = None
    held_back: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def heard(self) -> bool:
        """Whether the server sent the call anything to play."""
        return self.audio_ms is not None

    def line(self) -> str:
        """What the call heard and how its keypresses were answered, in one line."""
        parts = [f"audio {self.audio_ms:.0f} ms" if self.heard else "nothing to play"]
        if self.wait_to_chime_ms is not None:
            parts.append(f"chime after {self.wait_to_chime_ms:.0f} ms")
        if self.clear_ms is not None:
            parts.append(f"clears after [{', '.join(f'{ms:.1f}' for ms in self.clear_ms)}] ms")
        if self.heard:
            parts.append(f"underruns {self.underruns}")
            parts.append(f"most outstanding {self.max_outstanding_ms:.0f} ms")
        if self.malformed or self.unknown:
            parts.append(f"unplayable messages {self.malformed} malformed, {self.unknown} unknown")
        return f"call {self.n} {self.call_sid}: {', '.join(parts)}"


@dataclass(frozen=True, slots=True)
class SimResult:
    """Every call's result. Times run from the first connect, at `started` (perf_counter);
    `cpu_seconds` is the simulator's own CPU since then: near one core, it measured itself."""

    calls: tuple[CallResult, ...]
    connected: int
    started: float
    connect_seconds: float
    seconds: float
    cpu_seconds: float

    @property
    def media_frames(self) -> int:
        return sum(c.media_frames for c in self.calls)

    @property
    def messages(self) -> int:
        return sum(c.messages for c in self.calls)

    @property
    def failed(self) -> tuple[CallResult, ...]:
        return tuple(c for c in self.calls if not c.ok)

    @property
    def frames_per_second(self) -> float:
        return self.media_frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_call_second(self) -> float:
        """The simulator's CPU per second of call audio it sent (ms): in real time, what one call
        costs it, to set next to the server's."""
        audio_seconds = self.media_frames / FRAMES_PER_SECOND
        return self.cpu_seconds * 1000 / audio_seconds if audio_seconds else 0.0

    @property
    def held_back(self) -> int:
        return sum(c.held_back for c in self.calls)


@dataclass(slots=True)
class Progress:
    """Running totals, handed to the progress callback while the calls play."""

    calls: int
    connected: int = 0
    media_frames: int = 0
    done: int = 0
    failed: int = 0
    elapsed: float = 0.0

    def line(self) -> str:
        return (
            f"{self.elapsed:6.1f}s connected={self.connected}/{self.calls} "
            f"media_frames={self.media_frames} done={self.done} failed={self.failed}"
        )


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive messages of one call: all but the last as masked websocket frames, ready to
    write at once; the last as text, to go through `send()`. `presses` counts the keypresses in
    it; `ends` says it carries the call's stop."""

    head: bytes
    last: str
    messages: int
    media: int
    presses: int
    ends: bool


def check_url(url: str) -> None:
    """Raise ValueError unless `url` is a ws:// or wss:// URL."""
    try:
        parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}") from exc


def frames_for(seconds: float) -> int:
    """Media frames in `seconds` of audio, at least one."""
    return max(1, round(seconds * FRAMES_PER_SECOND))


def parse_press(text: str) -> tuple[float, str]:
    """A keypress written `KEY@SECONDS` (`1@0.5`, `#@4`) as (seconds, key)."""
    key, at, when = text.partition("@")
    try:
        seconds = float(when)
    except ValueError:
        seconds = math.nan
    if not (at and _is_key(key) and math.isfinite(seconds)):
        raise ValueError(
            f"bad keypress {text!r}: write KEY@SECONDS, KEY one of 0-9 * # A-D, e.g. 1@0.5"
        )
    return seconds, key


def press_frames(
    presses: Iterable[tuple[float, str]], seconds: float, frames: int
) -> dict[int, str]:
    """Media frame number (from 1) -> the keys pressed right after it, in the order pressed:
    a press at t seconds goes after the frame sent at t."""
    after: dict[int, str] = {}
    for at, key in sorted(presses, key=lambda press: press[0]):
        if not _is_key(key):
            raise ValueError(f"bad keypress {key!r}@{at:g}: the key must be one of 0-9 * # A-D")
        if not 0 <= at <= seconds:
            raise ValueError(
                f"bad keypress {key}@{at:g}: the time must be within the call, 0 to {seconds:g} s"
            )
        frame = min(round(at * FRAMES_PER_SECOND), frames - 1) + 1
        after[frame] = after.get(frame, "") + key
    return after


def _is_key(key: str) -> bool:
    return len(key) == 1 and key in KEYS


def batches(steps: Iterable[Step], size: int) -> Iterator[Batch]:
    """A call's script (`SimulatedCall.steps`) in batches of up to `size` messages."""
    chunk: list[Step] = []
    for step in steps:
        chunk.append(step)
        if len(chunk) == size:
            yield _batch(chunk)
            chunk = []
    if chunk:
        yield _batch(chunk)


def _batch(chunk: list[Step]) -> Batch:
    texts = [step.render() for step in chunk]
    kinds = [step.kind for step in chunk]
    head = b"".join(_frame(text) for text in texts[:-1])
    return Batch(
        head,
        texts[-1],
        len(chunk),
        kinds.count("media"),
        kinds.count("press"),
        kinds[-1] == "stop",
    )


def _frame(text: str) -> bytes:
    """`text` as a masked websocket text frame. Those of 126 bytes to 64 KiB (every media frame)
    are built here at half the cost of Frame.serialize(), which checks, runs extensions and
    writes to a BytesIO: a real-time call sends 50 a second."""
    data = text.encode()
    if not 126 <= len(data) < 1 << 16:
        return Frame(Opcode.TEXT, data).serialize(mask=True)
    key = os.urandom(4)
    return _TEXT_HEAD.pack(0x81, 0xFE, len(data)) + key + apply_mask(data, key)


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
        event = d["event"] if d is not None else None
        if event not in ("media", "mark", "clear"):
            if d is None:
                self.malformed += 1
            else:
                self.unknown += 1
            return
        due = self._play(d, event, now) if d.get("streamSid") == self.call.stream_sid else None
        if due is None:
            self.malformed += 1
            return
        self.received += 1
        self._echo(due)
        self._arm()

    def _play(self, d: dict, event: str, now: float) -> list[str] | None:
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
            _write(self.ws, _frame(self.call.mark(name)))

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

    def result(self, sent: _Sent, error: str | None, recording: Path | None) -> CallResult:
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
        )


@dataclass(slots=True)
class _Sent:
    """What one call has sent so far, and how often its frames were held back."""

    media: int = 0
    messages: int = 0
    held_back: int = 0


# Sends one call's script on its socket, telling its listener when keys go and when it hangs up.
_Send = Callable[[websockets.ClientConnection, Listener, _Sent], Awaitable[None]]


async def _flat_out(
    plan: Iterable[Batch],
    progress: Progress,
    ws: websockets.ClientConnection,
    listener: Listener,
    sent: _Sent,
) -> None:
    """The batches as fast as the server takes them."""
    loop = asyncio.get_running_loop()
    for batch in plan:
        if batch.ends:
            listener.hang_up()
        if batch.presses:
            # Nothing awaits before the write: this is when the keys go out.
            listener.pressed(loop.time(), batch.presses)
        # send() costs a syscall and ~10 us of Python per message, as much as a fast server
        # spends on one: the batch's head goes in one write instead. Its last message goes
        # through send(), which checks the connection is still open and waits while the write
        # buffer is full, so a slow server holds the client back.
        _write(ws, batch.head)
        await ws.send(batch.last)
        sent.messages += batch.messages
        sent.media += batch.media
        progress.media_frames += batch.media


@dataclass(slots=True)
class _Paced:
    """A call the pacer plays: its script from `step` on, and the tick of its first frame."""

    ws: websockets.ClientConnection
    listener: Listener
    sent: _Sent
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
        sent: _Sent,
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
            frames.append(_frame(step.render()))
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


async def run(
    url: str,
    calls: int,
    seconds: float,
    realtime: bool,
    tenant: str | None = "t1",
    *,
    first: int = 1,
    close_timeout: float = 120.0,
    on_progress: Callable[[Progress], None] | None = None,
    progress_every: float = 1.0,
    presses: Iterable[tuple[float, str]] = (),
    wait_key: str = DEFAULT_WAIT_KEY,
    record: Path | None = None,
) -> SimResult:
    """Play `calls` calls of `seconds` audio each, numbered from `first`, and wait for the server
    to close every one after its `stop`. `realtime` paces 50 media frames/s per call; otherwise
    frames go as fast as the server takes them. A call that fails is reported, never raised.

    Every call presses the keys in `presses`, (seconds, key) each, as `dtmf` events right after
    the media frame at that time; `wait_key` is the one whose answer is timed as the chime. With
    `record`, what each caller heard goes to `record/<callSid>.wav`, `seconds` long.
    """
    check_url(url)
    if not 1 <= calls <= MAX_CALLS:
        raise ValueError(f"calls must be 1..{MAX_CALLS}, not {calls}")
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be > 0 and <= {MAX_SECONDS}, not {seconds}")
    if not _is_key(wait_key):
        raise ValueError(f"the wait key must be one of 0-9 * # A-D, not {wait_key!r}")
    frames = frames_for(seconds)
    after = press_frames(presses, seconds, frames)
    if record is not None:
        try:
            await asyncio.to_thread(record.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"cannot record to {record}: {exc.strerror or exc}") from exc
    simulated = [SimulatedCall(n, tenant, _caller(n)) for n in range(first, first + calls)]
    # With keys to press, those are the only ones: the server would answer the periodic dtmf too.
    dtmf_every = 0 if after else DTMF_EVERY
    steps = [call.steps(frames, MARK_EVERY, dtmf_every, after) for call in simulated]
    progress = Progress(calls)
    start: Callable[[], float]
    sends: list[_Send]
    if realtime:
        pacer = Pacer(progress)
        start = pacer.start
        sends = [partial(pacer.play, call_steps) for call_steps in steps]
    else:
        rendered: list[Iterable[Batch]] = [batches(s, FLAT_OUT_BATCH) for s in steps]
        if calls * frames <= PRERENDER_FRAMES:
            # Echoed marks are then numbered after the call's stop: flat out, timing comes first.
            rendered = [list(plan) for plan in rendered]
        start = asyncio.get_running_loop().time
        sends = [partial(_flat_out, plan, progress) for plan in rendered]
    ears = _Ears("".join(after.values()), wait_key, record, frames * FRAME_MS / 1000)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    reporter = _report(progress, t0, on_progress, progress_every) if on_progress else None
    reporter_task = asyncio.create_task(reporter) if reporter else None
    try:
        sockets = await asyncio.gather(*(_connect(url, gate, progress) for _ in simulated))
        connect_seconds = time.perf_counter() - t0
        results = await asyncio.gather(
            *(
                _play(ws, call, start, send, ears, close_timeout, progress)
                for ws, call, send in zip(sockets, simulated, sends, strict=True)
            )
        )
    finally:
        if reporter_task:
            reporter_task.cancel()
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return SimResult(tuple(results), progress.connected, t0, connect_seconds, seconds, cpu)


@dataclass(frozen=True, slots=True)
class _Ears:
    """What every call listens for: its keys in the order pressed, the wait key, where to record
    what it heard, and for how long (seconds from the call's start)."""

    keys: str
    wait_key: str
    record: Path | None
    heard_seconds: float


def _caller(n: int) -> str:
    return f"+1555{n % 10_000_000:07d}"


async def open_socket(url: str) -> websockets.ClientConnection:
    """Connect as Twilio does: no compression, no pings; and straight to `url`, as a proxy in the
    path would be measured too."""
    return await websockets.connect(
        url, compression=None, ping_interval=None, proxy=None, open_timeout=OPEN_TIMEOUT
    )


async def _connect(
    url: str, gate: asyncio.Semaphore, progress: Progress
) -> websockets.ClientConnection | str:
    """An open socket, or why there is none."""
    async with gate:
        try:
            ws = await open_socket(url)
        except (OSError, TimeoutError, WebSocketException) as exc:
            progress.failed += 1
            return f"connect: {type(exc).__name__}: {exc}"
    progress.connected += 1
    return ws


async def _play(
    ws: websockets.ClientConnection | str,
    call: SimulatedCall,
    start: Callable[[], float],
    send: _Send,
    ears: _Ears,
    close_timeout: float,
    progress: Progress,
) -> CallResult:
    """Play a call with `send`, from `start()` (loop time); wait for the server to close it."""
    if isinstance(ws, str):
        return CallResult(call.n, call.call_sid, 0, 0, None, ws)
    error: str | None = None
    started = start()
    listener = Listener(ws, call, started, ears.keys, ears.wait_key, ears.record is not None)
    reader = asyncio.create_task(listener.listen())
    sent = _Sent()
    try:
        await send(ws, listener, sent)
        # The server closes after `stop`: that is the sign it has handled every frame before it.
        async with asyncio.timeout(close_timeout):
            error = await reader
    except TimeoutError:
        error = f"the server did not close within {close_timeout:g}s of stop"
    except (OSError, WebSocketException) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        listener.hang_up()
        reader.cancel()
        await ws.close()
    if error is None and ws.close_code != 1000:
        error = f"closed with code {ws.close_code} {ws.close_reason}".rstrip()
    recording = None
    if ears.record is not None:
        recording = ears.record / f"{call.call_sid}.wav"
        heard = listener.playout.heard(started + ears.heard_seconds)
        try:
            await asyncio.to_thread(write_wav, recording, heard)
        except OSError as exc:
            error = error or f"recording {recording}: {exc.strerror or exc}"
            recording = None
    if error:
        progress.failed += 1
    else:
        progress.done += 1
    return listener.result(sent, error, recording)


def _write(ws: websockets.ClientConnection, frames: bytes) -> None:
    """Write ready-made frames now, in order with everything sent before, as `send()` does."""
    if frames and ws.state is State.OPEN:
        ws.transport.write(frames)


async def _report(
    progress: Progress, t0: float, on_progress: Callable[[Progress], None], every: float
) -> None:
    while True:
        await asyncio.sleep(every)
        progress.elapsed = time.perf_counter() - t0
        on_progress(progress)
