"""Plays Twilio-shaped calls at a Media Streams websocket and reports what it sent and how long.

Framework-free (asyncio and websockets): the `voiceflow_callsim` command and the benchmarks drive
it. Every call connects first, then all of them play at once, so the server holds every call open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import websockets
from websockets.exceptions import InvalidURI, WebSocketException
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from .simulated_call import FRAME_MS, SimulatedCall

# One mark every 2 s and one keypress every 2.5 s of audio: rare, as on a real call.
MARK_EVERY = 100
DTMF_EVERY = 125
FRAMES_PER_SECOND = 1000 // FRAME_MS
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


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one call sent, and how it ended: the server closing it after `stop` is success."""

    n: int
    call_sid: str
    media_frames: int
    messages: int
    close_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


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
    write at once; the last as text, to go through `send()`."""

    head: bytes
    last: str
    messages: int
    media: int


def check_url(url: str) -> None:
    """Raise ValueError unless `url` is a ws:// or wss:// URL."""
    try:
        parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}") from exc


def frames_for(seconds: float) -> int:
    """Media frames in `seconds` of audio, at least one."""
    return max(1, round(seconds * FRAMES_PER_SECOND))


def script(call: SimulatedCall, frames: int) -> Iterator[tuple[str, bool]]:
    """The call's text frames in order (`SimulatedCall.whole_call`), each with whether it is a
    20 ms media frame: rendering one moves the call's media `chunk` counter."""
    seen = call.chunk
    for frame in call.whole_call(frames, mark_every=MARK_EVERY, dtmf_every=DTMF_EVERY):
        yield frame, call.chunk != seen
        seen = call.chunk


def batches(call: SimulatedCall, frames: int, size: int) -> Iterator[Batch]:
    """The call's script in batches of up to `size` messages."""
    chunk: list[tuple[str, bool]] = []
    for message in script(call, frames):
        chunk.append(message)
        if len(chunk) == size:
            yield _batch(chunk)
            chunk = []
    if chunk:
        yield _batch(chunk)


def _batch(chunk: list[tuple[str, bool]]) -> Batch:
    head = b"".join(Frame(Opcode.TEXT, t.encode()).serialize(mask=True) for t, _ in chunk[:-1])
    return Batch(head, chunk[-1][0], len(chunk), sum(is_media for _, is_media in chunk))


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
) -> SimResult:
    """Play `calls` calls of `seconds` audio each, numbered from `first`, and wait for the server
    to close every one after its `stop`. `realtime` paces 50 media frames/s per call; otherwise
    frames go as fast as the server takes them. A call that fails is reported, never raised."""
    check_url(url)
    if not 1 <= calls <= MAX_CALLS:
        raise ValueError(f"calls must be 1..{MAX_CALLS}, not {calls}")
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be > 0 and <= {MAX_SECONDS}, not {seconds}")
    frames = frames_for(seconds)
    simulated = [SimulatedCall(n, tenant, _caller(n)) for n in range(first, first + calls)]
    size = 1 if realtime else FLAT_OUT_BATCH
    plans: list[Iterable[Batch]] = [batches(call, frames, size) for call in simulated]
    if not realtime and calls * frames <= PRERENDER_FRAMES:
        plans = [list(plan) for plan in plans]
    progress = Progress(calls)
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
                _play(ws, call, plan, realtime, close_timeout, progress)
                for ws, call, plan in zip(sockets, simulated, plans, strict=True)
            )
        )
    finally:
        if reporter_task:
            reporter_task.cancel()
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return SimResult(tuple(results), progress.connected, t0, connect_seconds, seconds, cpu)


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
    plan: Iterable[Batch],
    realtime: bool,
    close_timeout: float,
    progress: Progress,
) -> CallResult:
    if isinstance(ws, str):
        return CallResult(call.n, call.call_sid, 0, 0, None, ws)
    media = messages = 0
    error: str | None = None
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        for batch in plan:
            if realtime and batch.media:
                # Due times run from the call's start, so one late frame does not delay the rest.
                delay = started + media * FRAME_MS / 1000 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await _send(ws, batch)
            messages += batch.messages
            media += batch.media
            progress.media_frames += batch.media
        # The server closes after `stop`: that is the sign it has handled every frame before it.
        async with asyncio.timeout(close_timeout):
            async for _ in ws:
                pass
    except TimeoutError:
        error = f"the server did not close within {close_timeout:g}s of stop"
    except (OSError, WebSocketException) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        await ws.close()
    if error is None and ws.close_code != 1000:
        error = f"closed with code {ws.close_code} {ws.close_reason}".rstrip()
    if error:
        progress.failed += 1
    else:
        progress.done += 1
    return CallResult(call.n, call.call_sid, media, messages, ws.close_code, error)


async def _send(ws: websockets.ClientConnection, batch: Batch) -> None:
    # send() costs a syscall and ~10 us of Python per message, as much as a fast server spends on
    # one: the batch's head goes in one write instead. Its last message goes through send(), which
    # checks the connection is still open and waits while the write buffer is full, so a slow
    # server holds the client back.
    if batch.head and ws.state is State.OPEN:
        ws.transport.write(batch.head)
    await ws.send(batch.last)


async def _report(
    progress: Progress, t0: float, on_progress: Callable[[Progress], None], every: float
) -> None:
    while True:
        await asyncio.sleep(every)
        progress.elapsed = time.perf_counter() - t0
        on_progress(progress)
