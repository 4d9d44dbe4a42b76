"""Plays Twilio-shaped calls at a Media Streams websocket and reports what it sent and how long.

Framework-free (asyncio and websockets): the `voiceflow_callsim` command and the benchmarks drive
it. Every call connects first, then all of them play at once, so the server holds every call open.
In real time one timer paces every call (a `Pacer`), so that the simulator costs a fraction of the
server it measures on the same machine.
Each call also plays Twilio's side of the server's outbound audio (a `Listener`): it plays `media`
in real time, echoes each `mark` when the audio before it has played, empties its buffer on
`clear`, and times the server's answers to the keys the call presses. A call can talk too: a
voice-like signal (or a recording) instead of silence in given windows, to try barge-in with.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import websockets
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException
from websockets.frames import CloseCode
from websockets.uri import parse_uri

from ..chime import write_wav
from ..mulaw import FRAME_MS, MULAW_SILENCE, SAMPLE_RATE
from ..signature import compute_signature
from ..tasks import spawn
from .frames import Batch, batches, write_frames
from .listener import Listener
from .pacer import Pacer
from .results import CallResult, Progress, Sent, SimResult, joined
from .script import DEFAULT_WAIT_KEY, frames_for, is_key, press_frames, talk_frames
from .simulated_call import SimulatedCall
from .talk import synthetic_voice
from .webhook import Connect, Twilio, after, answer, follow, stream_url

# One mark every 2 s and one keypress every 2.5 s of audio: rare, as on a real call.
MARK_EVERY = 100
DTMF_EVERY = 125
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
# A call's action that answers <Redirect> is followed to a new stream, as Twilio does, this many
# streams at most: a server that redirects every stream would otherwise loop for ever.
MAX_LEGS = 5
REDIRECT = "Redirect "
# The close code of a connection that ended without a closing handshake (RFC 6455 7.1.5).
DROPPED = CloseCode.ABNORMAL_CLOSURE


def check_url(url: str) -> None:
    """Raise ValueError unless `url` is a ws:// or wss:// URL."""
    try:
        parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}") from exc


_T = TypeVar("_T")


def check(
    url: str,
    calls: int,
    seconds: float,
    *,
    presses: Iterable[tuple[float, str]] = (),
    wait_key: str = DEFAULT_WAIT_KEY,
    talk: Iterable[tuple[float, float]] = (),
    silent: bool = False,
) -> None:
    """Raise ValueError, saying what is wrong, unless `run` can play calls with these arguments:
    the simulator checks them all before it plays anything."""
    check_url(url)
    if not 1 <= calls <= MAX_CALLS:
        raise ValueError(f"calls must be 1..{MAX_CALLS}, not {calls}")
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be > 0 and <= {MAX_SECONDS}, not {seconds}")
    if not is_key(wait_key):
        raise ValueError(f"the wait key must be one of 0-9 * # A-D, not {wait_key!r}")
    presses, talk = tuple(presses), tuple(talk)
    if silent and (presses or talk):
        raise ValueError("a silent call neither presses keys nor talks")
    frames = frames_for(seconds)
    press_frames(presses, seconds, frames)
    talk_frames(talk, bytes([MULAW_SILENCE]), seconds, frames)


# Sends one call's script on its socket, telling its listener when keys go and when it hangs up.
_Send = Callable[[websockets.ClientConnection, Listener, Sent], Coroutine[Any, Any, None]]


async def _flat_out(
    plan: Iterable[Batch],
    progress: Progress,
    ws: websockets.ClientConnection,
    listener: Listener,
    sent: Sent,
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
        write_frames(ws, batch.head)
        await ws.send(batch.last)
        sent.messages += batch.messages
        sent.media += batch.media
        progress.media_frames += batch.media


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
    twilio: Twilio | None = None,
    talk: Iterable[tuple[float, float]] = (),
    talk_audio: bytes | None = None,
    silent: bool = False,
) -> SimResult:
    """Play `calls` calls of `seconds` audio each, numbered from `first`, and wait for the server
    to close every one after its `stop`. `realtime` paces 50 media frames/s per call; otherwise
    frames go as fast as the server takes them. A call that fails is reported, never raised.

    Every call presses the keys in `presses`, (seconds, key) each, as `dtmf` events right after
    the media frame at that time; `wait_key` is the one whose answer is timed as the chime. With
    `record`, what each caller heard goes to `record/<callSid>.wav`, `seconds` long (with the
    turnarounds between its streams, when it was redirected).

    A `silent` call sends silence only: no periodic keypress (as a call sends otherwise), no
    talk, no press; a caller who never says a word, for a server's idle path.

    Every call talks in the windows of `talk`, (start, duration) seconds each, within the call
    and not overlapping: those media frames carry `talk_audio` (mu-law, 8 kHz), or else the
    synthetic voice, each window from its start, over again if the window is longer.

    With `twilio`, each call plays Twilio's HTTP side too: the voice webhook first (its TwiML's
    Parameters go in the start; the stream still opens at `url`), and once the stream has
    closed, its `<Connect action>`, whose answer is the result's `then`. The server may then
    close the stream before the call's stop (a hang-up, a transfer): that is not a failure. An
    action that answers `<Redirect>` is followed as Twilio follows it, to a new stream (the same
    CallSid, a new StreamSid) on `twilio`'s server, which plays the rest of the call; the result
    then holds each stream's own in `legs`.
    """
    presses, windows = tuple(presses), tuple(talk)
    check(url, calls, seconds, presses=presses, wait_key=wait_key, talk=windows, silent=silent)
    frames = frames_for(seconds)
    after = press_frames(presses, seconds, frames)
    talking: dict[int, bytes] = {}
    if windows:  # the voice is made once a process, when a run first talks
        voice = synthetic_voice() if talk_audio is None else talk_audio
        talking = talk_frames(windows, voice, seconds, frames)
    if record is not None:
        try:
            await asyncio.to_thread(record.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"cannot record to {record}: {exc.strerror or exc}") from exc
    simulated = [SimulatedCall(n, tenant, _caller(n)) for n in range(first, first + calls)]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    answers: list[Connect | str | None] = [None] * calls
    if twilio is not None:
        answers = list(await asyncio.gather(*(_answer(twilio, c, gate) for c in simulated)))
        for call, connect in zip(simulated, answers, strict=True):
            if isinstance(connect, Connect):
                call.parameters = connect.parameters
    # A call told to press keys, to talk or to keep silent presses no others: the server would
    # answer the periodic dtmf too.
    dtmf_every = 0 if after or talking or silent else DTMF_EVERY
    steps = [call.steps(frames, MARK_EVERY, dtmf_every, after, talking) for call in simulated]
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

    def rest(call: SimulatedCall, sent: int) -> _Rest:
        """The call from media frame `sent` on, for its next leg: its keys, and how to send it."""
        presses, talks = _from(after, sent), _from(talking, sent)
        leg = call.steps(frames - sent, MARK_EVERY, dtmf_every, presses, talks)
        send = (
            partial(pacer.play, leg)
            if realtime
            else partial(_flat_out, batches(leg, FLAT_OUT_BATCH), progress)
        )
        return _Rest(frames - sent, "".join(presses.values()), send)

    ears = _Ears("".join(after.values()), wait_key, record, frames, rest)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    reporter = _report(progress, t0, on_progress, progress_every) if on_progress else None
    reporter_task = spawn(reporter) if reporter else None
    try:
        sockets = await asyncio.gather(
            *(_open(url, gate, progress, twilio, connect) for connect in answers)
        )
        connect_seconds = time.perf_counter() - t0
        results = await asyncio.gather(
            *(
                _play(ws, call, start, send, ears, close_timeout, progress, twilio, connect)
                for ws, call, send, connect in zip(sockets, simulated, sends, answers, strict=True)
            )
        )
    finally:
        if reporter_task:
            reporter_task.cancel()
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return SimResult(tuple(results), progress.connected, t0, connect_seconds, seconds, cpu)


@dataclass(frozen=True, slots=True)
class _Rest:
    """What is left of a call when a <Redirect> moves it to a new stream: its media frames, the
    keys it will press, and how to send them."""

    frames: int
    keys: str
    send: _Send


@dataclass(frozen=True, slots=True)
class _Ears:
    """What every call listens for: its keys in the order pressed, the wait key, where to record
    what it heard, how long it is (media frames), and what is left of it after the media frames
    sent so far, when a <Redirect> moves it."""

    keys: str
    wait_key: str
    record: Path | None
    frames: int
    rest: Callable[[SimulatedCall, int], _Rest]


def _from(frames: dict[int, _T], sent: int) -> dict[int, _T]:
    """A per-frame map (frame number from 1) for the leg that goes on after `sent` frames."""
    return {i - sent: value for i, value in frames.items() if i > sent}


def _caller(n: int) -> str:
    return f"+1555{n % 10_000_000:07d}"


async def open_socket(
    url: str, headers: dict[str, str] | None = None
) -> websockets.ClientConnection:
    """Connect as Twilio does: no compression, no pings; and straight to `url`, as a proxy in the
    path would be measured too."""
    return await websockets.connect(
        url,
        additional_headers=headers,
        compression=None,
        ping_interval=None,
        proxy=None,
        open_timeout=OPEN_TIMEOUT,
    )


async def _answer(twilio: Twilio, call: SimulatedCall, gate: asyncio.Semaphore) -> Connect | str:
    """The webhook's answer for `call`, or why there is none."""
    async with gate:
        try:
            return await answer(twilio, call)
        except ValueError as exc:
            return f"webhook: {exc}"


async def _open(
    url: str,
    gate: asyncio.Semaphore,
    progress: Progress,
    twilio: Twilio | None,
    connect: Connect | str | None,
) -> websockets.ClientConnection | str:
    """The call's stream at `url`: signed as Twilio signs its TwiML's stream URL when the
    webhook answered one; or why the webhook failed."""
    if isinstance(connect, str):
        return connect
    headers = _signed(twilio, connect) if twilio is not None and connect is not None else None
    return await _connect(url, gate, progress, headers)


def _signed(twilio: Twilio, connect: Connect) -> dict[str, str] | None:
    """The upgrade's headers: signed as Twilio signs its TwiML's stream URL, with a token."""
    if not twilio.token:
        return None
    return {"X-Twilio-Signature": compute_signature(twilio.token, connect.stream_url)}


async def _connect(
    url: str, gate: asyncio.Semaphore, progress: Progress, headers: dict[str, str] | None = None
) -> websockets.ClientConnection | str:
    """An open socket, or why there is none."""
    async with gate:
        try:
            ws = await open_socket(url, headers)
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
    twilio: Twilio | None = None,
    connect: Connect | str | None = None,
) -> CallResult:
    """Play a call with `send`, from `start()` (loop time); wait for the server to close it.
    With `twilio`, the server may close it first; then Twilio's action is asked what follows,
    and a `<Redirect>` is followed as Twilio does: its URL POSTed, and the rest of the call
    played on the new stream its TwiML names (the same CallSid, a new StreamSid)."""
    if isinstance(ws, str):
        if isinstance(connect, str):  # the webhook failed: _connect never counted it
            progress.failed += 1
        return CallResult(call.n, call.call_sid, 0, 0, None, ws)
    loop = asyncio.get_running_loop()
    legs: list[CallResult] = []
    heard: list[bytes] = []
    keys, frames, sent_so_far = ears.keys, ears.frames, 0
    turnaround: float | None = None
    while True:
        started = start()
        listener, sent, error = await _leg(
            ws, call, started, send, keys, ears, close_timeout, twilio is not None
        )
        closed = loop.time()
        then = None
        if twilio is not None and isinstance(connect, Connect) and connect.action:
            try:
                then = await after(twilio, call, connect.action)
            except ValueError as exc:
                error = error or f"action: {exc}"
        leg = listener.result(sent, error, None)
        legs.append(dataclasses.replace(leg, then=then, turnaround_ms=turnaround))
        sent_so_far += sent.media
        moved = (
            twilio is not None
            and error is None
            and then is not None
            and then.startswith(REDIRECT)
            and sent.media < frames
        )
        if ears.record is not None:
            # Up to the end of the call's audio; a moved leg up to its close (the silence of the
            # turnaround follows, as the caller hears it).
            end = closed if moved else started + frames * FRAME_MS / 1000
            heard.append(listener.playout.heard(end))
        if not moved or twilio is None or then is None:
            break
        if len(legs) == MAX_LEGS:
            looped = f"redirected more than {MAX_LEGS - 1} times"
            legs[-1] = dataclasses.replace(legs[-1], error=looped)
            break
        call.next_leg(len(legs) + 1)
        try:
            connect = await follow(twilio, call, then.removeprefix(REDIRECT))
            call.parameters = connect.parameters
            ws = await open_socket(stream_url(twilio, connect), _signed(twilio, connect))
        except (ValueError, OSError, TimeoutError, WebSocketException) as exc:
            legs[-1] = dataclasses.replace(legs[-1], error=f"redirect: {type(exc).__name__}: {exc}")
            break
        opened = loop.time()
        turnaround = (opened - closed) * 1000
        if ears.record is not None:
            heard.append(bytes([MULAW_SILENCE]) * round((opened - closed) * SAMPLE_RATE))
        rest = ears.rest(call, sent_so_far)
        keys, frames, send = rest.keys, rest.frames, rest.send
    recording = None
    if ears.record is not None:
        recording = ears.record / f"{call.call_sid}.wav"
        try:
            await asyncio.to_thread(write_wav, recording, b"".join(heard))
        except OSError as exc:
            legs[-1] = dataclasses.replace(
                legs[-1], error=legs[-1].error or f"recording {recording}: {exc.strerror or exc}"
            )
            recording = None
    result = joined(legs, recording)
    if result.ok:
        progress.done += 1
    else:
        progress.failed += 1
    return result


async def _leg(
    ws: websockets.ClientConnection,
    call: SimulatedCall,
    started: float,
    send: _Send,
    keys: str,
    ears: _Ears,
    close_timeout: float,
    may_end: bool,
) -> tuple[Listener, Sent, str | None]:
    """Play one stream of a call with `send` from `started`, until the server closes it: its
    listener, what it sent, and why it failed, if it did. When it `may_end` the call (Twilio's
    HTTP side is played), the server may close it before the call's stop, or drop it."""
    error: str | None = None
    listener = Listener(ws, call, started, keys, ears.wait_key, ears.record is not None)
    reader = asyncio.create_task(listener.listen())
    sent = Sent()
    try:
        sending = asyncio.create_task(send(ws, listener, sent))
        waited = {sending, reader} if may_end else {sending}
        await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        if sending.done():
            try:
                await sending
            except ConnectionClosed:
                if not may_end:
                    raise
                # The server ended the call as its stop went out: its close says how.
        else:  # the server ended the call before its stop
            sending.cancel()
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
    if may_end and ws.close_code == DROPPED:
        # The server's process died, or its socket: Twilio asks the action what follows however
        # the stream ended, and the result's close code says it dropped.
        error = None
    elif error is None and ws.close_code != 1000:
        error = f"closed with code {ws.close_code} {ws.close_reason}".rstrip()
    return listener, sent, error


async def _report(
    progress: Progress, t0: float, on_progress: Callable[[Progress], None], every: float
) -> None:
    while True:
        await asyncio.sleep(every)
        progress.elapsed = time.perf_counter() - t0
        on_progress(progress)
