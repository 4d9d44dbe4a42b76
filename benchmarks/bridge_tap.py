"""The bridge benchmark's clock: what the simulated callers sent and heard and what the fake
Realtime server received and sent, each with its time, matched by content after a round.

The simulator and the fake run in the benchmark's one process, so one clock (perf_counter)
times both ends of each hop through the server under test:

- (a) a caller's media frame, written to its socket, to its `input_audio_buffer.append` read by
  the fake: each frame's first 4 bytes carry its number (`frame_stamp`), small enough to stay
  silence to the fake's VAD, and the bridges forward Twilio's payload untouched;
- (b) a `response.output_audio.delta` written by the fake to the first `media` carrying its
  audio read by the caller: the fake's audio is the same tone for every delta, so each delta's
  first 8 bytes are replaced by a marker and a number unique in the run (`delta_stamp`), found
  again in the audio the call heard however the bridge re-framed it;
- (c) an `input_audio_buffer.speech_started` written by the fake to the first `clear` the same
  call read after it (before its next speech_started).

Which fake connection is which call is learned from (b): the call that heard a connection's
deltas. The hooks are subclasses of the simulator's `SimulatedCall` and `Listener` and of the
fake's `FakeConnection`, put in place of the originals for the benchmark's process only
(`tapped_simulator`, `timed_fake`): neither tool has a tap of its own. The simulator's calls all
talk with the same audio; here each call talks with its own (`Tap.voices`), so that calls can
take turns at different times, as independent callers do.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import websockets
from openai.types.realtime import InputAudioBufferSpeechStartedEvent, ResponseAudioDeltaEvent
from pydantic import BaseModel

from benchmarks.servers import TWILIO_TOKEN
from voiceflow_channels.mulaw import FRAME_BYTES, MULAW_SILENCE
from voiceflow_channels.signature import compute_signature
from voiceflow_channels.testing import callsim
from voiceflow_channels.testing.fake_realtime import FakeConnection, FakeRealtime, Script
from voiceflow_channels.testing.fake_realtime import server as fake_server
from voiceflow_channels.testing.listener import Listener
from voiceflow_channels.testing.script import frames_for, talk_frames
from voiceflow_channels.testing.simulated_call import SimulatedCall
from voiceflow_channels.testing.talk import synthetic_voice

# A stamp is made of mu-law bytes 0xF0-0xFF (one hex digit each, |value| <= 120 of 32767): too
# quiet to change what a VAD hears, and never the fake's tone, which has none of them but 0xFF.
DIGIT = 0xF0
FRAME_DIGITS = 4  # frame numbers up to 65535: 21 minutes of 20 ms frames
# Two bytes in none of the fake's tone, its silence or a stamp's digits, then the number.
DELTA_MARKER = bytes([0x7A, 0x75])
DELTA_DIGITS = 6
DELTA_STAMP_BYTES = len(DELTA_MARKER) + DELTA_DIGITS


def _digits(number: int, count: int) -> bytes:
    return bytes(DIGIT | (number >> shift) & 0xF for shift in range(4 * (count - 1), -4, -4))


def _number(digits: bytes) -> int | None:
    """The number `_digits` wrote, or None when these are not stamp digits."""
    number = 0
    for byte in digits:
        if byte & 0xF0 != DIGIT:
            return None
        number = number << 4 | byte & 0xF
    return number


def frame_stamp(frame: int) -> bytes:
    return _digits(frame, FRAME_DIGITS)


def delta_stamp(number: int) -> bytes:
    return DELTA_MARKER + _digits(number, DELTA_DIGITS)


def caller_audio(seconds: float, talk: list[tuple[float, float]]) -> bytes:
    """A whole call of one caller's audio, every frame stamped with its number (from 1): the
    simulator's synthetic voice in the `talk` windows, silence elsewhere (a `Tap`'s voice)."""
    frames = frames_for(seconds)
    voiced = talk_frames(talk, synthetic_voice(), seconds, frames)
    silence = bytes([MULAW_SILENCE]) * FRAME_BYTES
    return b"".join(
        frame_stamp(n) + voiced.get(n, silence)[FRAME_DIGITS:] for n in range(1, frames + 1)
    )


@dataclass
class Tap:
    """One round's records, in perf_counter seconds. Call number `first + i` talks with
    `voices[i % len(voices)]` (`caller_audio`)."""

    voices: list[bytes]
    first: int
    sent: dict[str, dict[int, float]] = field(default_factory=dict)  # callSid -> frame -> time
    heard: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # callSid -> messages
    appends: list[tuple[int, int, float]] = field(default_factory=list)  # (connection, frame, t)
    # delta stamp -> (connection, first delta of its item, time)
    deltas: dict[int, tuple[int, bool, float]] = field(default_factory=dict)
    speech_started: list[tuple[int, float]] = field(default_factory=list)  # (connection, t)
    connections: list[TimedConnection] = field(default_factory=list)


@contextmanager
def tapped_simulator(tap: Tap) -> Iterator[None]:
    """While open, the simulator's calls record when each media frame goes out and every message
    they hear, into `tap`."""

    class TappedCall(SimulatedCall):
        def __post_init__(self) -> None:
            super().__post_init__()
            self.sent_at = tap.sent.setdefault(self.call_sid, {})
            self.voice = tap.voices[(self.n - tap.first) % len(tap.voices)]

        def media_with(self, audio: bytes) -> str:
            """The next frame of this call's own voice, whatever the simulator hands it."""
            frame = self.chunk + 1
            text = super().media_with(self.voice[(frame - 1) * FRAME_BYTES : frame * FRAME_BYTES])
            # Rendered by the pacer right before it writes the frame to the socket.
            self.sent_at[frame] = time.perf_counter()
            return text

    class TappedListener(Listener):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.tapped = tap.heard.setdefault(self.call.call_sid, [])

        def hear(self, message: str | bytes) -> None:
            self.tapped.append((time.perf_counter(), message))  # type: ignore[arg-type]
            super().hear(message)

    async def signed_socket(
        url: str, headers: dict[str, str] | None = None
    ) -> websockets.ClientConnection:
        """The stream, signed as Twilio signs it (tac checks; the others have no token)."""
        signature = {"X-Twilio-Signature": compute_signature(TWILIO_TOKEN, url)}
        return await open_socket(url, {**(headers or {}), **signature})

    open_socket = callsim.open_socket
    with (
        # Every frame of a call goes through media_with when it talks for the whole call.
        mock.patch.object(callsim, "SimulatedCall", TappedCall),
        mock.patch.object(callsim, "Listener", TappedListener),
        mock.patch.object(callsim, "open_socket", signed_socket),
    ):
        yield


class TimedFake(FakeRealtime):
    """The fake, its connections recording into `tap` (the one current when each opened)."""

    def __init__(self, script: Script) -> None:
        super().__init__(script)
        self.tap = Tap([b""], 1)
        self.delta_numbers = itertools.count(1)
        self.connection_keys = itertools.count(1)

    def forget(self, tap: Tap) -> None:
        """Drop a matched round's records, and the connections closed since: the fake keeps
        every connection for tests to look at, which in a benchmark grows by a hundred calls'
        conversations a round (and their taps with them), and so does the collector's work."""
        for connection in tap.connections:
            connection.tap = None
        self.connections = [c for c in self.connections if not c.closed.is_set()]


class TimedConnection(FakeConnection):
    """A fake connection that records each append's frame number as it reads it, and stamps
    and times each audio delta and speech_started it writes."""

    fake: TimedFake

    def __init__(self, fake: TimedFake, *args: Any) -> None:
        super().__init__(fake, *args)
        # The fake numbers connections by its list, which `forget` shortens: this key is unique.
        self.key = next(fake.connection_keys)
        self.tap: Tap | None = fake.tap
        fake.tap.connections.append(self)
        self._items: set[str] = set()
        self._read_at = 0.0

    async def _receive(self, message: str | bytes) -> None:
        self._read_at = time.perf_counter()
        await super()._receive(message)

    async def input_audio_buffer_append(self, event: Any) -> None:
        try:
            head = base64.b64decode(event.audio[:8])
        except (binascii.Error, ValueError):
            head = b""
        frame = _number(head[:FRAME_DIGITS]) if len(head) >= FRAME_DIGITS else None
        if frame is not None and self.tap is not None:
            self.tap.appends.append((self.key, frame, self._read_at))
        await super().input_audio_buffer_append(event)

    async def send(self, model: type[BaseModel], **fields: Any) -> BaseModel:
        if model is ResponseAudioDeltaEvent:
            number = next(self.fake.delta_numbers)
            audio = base64.b64decode(fields["delta"])
            if len(audio) >= DELTA_STAMP_BYTES:
                audio = delta_stamp(number) + audio[DELTA_STAMP_BYTES:]
                fields["delta"] = base64.b64encode(audio).decode()
            first = fields["item_id"] not in self._items
            self._items.add(fields["item_id"])
            event = await super().send(model, **fields)
            if self.tap is not None:
                self.tap.deltas[number] = (self.key, first, time.perf_counter())
            return event
        event = await super().send(model, **fields)
        if model is InputAudioBufferSpeechStartedEvent and self.tap is not None:
            self.tap.speech_started.append((self.key, time.perf_counter()))
        return event


@asynccontextmanager
async def timed_fake(script: Script) -> AsyncIterator[TimedFake]:
    """The fake Realtime server on a free port, its connections timed."""
    with mock.patch.object(fake_server, "FakeConnection", TimedConnection):
        async with TimedFake(script) as fake:
            yield fake


# A latency: (seconds from the round's first frame to the event, ms the edge took).
Latency = tuple[float, float]


@dataclass
class Edge:
    """One round's edge latencies and how many events each was matched from."""

    append: list[Latency]  # (a)
    first_delta: list[Latency]  # (b), each item's first delta
    delta: list[Latency]  # every delta whose audio was heard
    clear: list[Latency]  # (c)
    appends: int
    deltas: int
    first_deltas: int
    speech_started: int
    unmapped_connections: int  # connections no call heard a delta of
    crossed: int  # deltas heard on a call other than their connection's


def match(tap: Tap) -> Edge:
    """Match the round's records: see the module's docstring."""
    start = min((min(frames.values()) for frames in tap.sent.values() if frames), default=0.0)
    heard_at: dict[int, tuple[str, float]] = {}  # delta stamp -> (callSid, first media's time)
    clears: dict[str, list[float]] = {}
    for call_sid, messages in tap.heard.items():
        audio = bytearray()
        starts: list[int] = []
        times: list[float] = []
        clears[call_sid] = []
        for at, text in messages:
            message = json.loads(text)
            if message.get("event") == "media":
                starts.append(len(audio))
                times.append(at)
                audio += base64.b64decode(message["media"]["payload"])
            elif message.get("event") == "clear":
                clears[call_sid].append(at)
        position = audio.find(DELTA_MARKER)
        while position != -1:
            digits = audio[position + len(DELTA_MARKER) : position + DELTA_STAMP_BYTES]
            number = _number(bytes(digits)) if len(digits) == DELTA_DIGITS else None
            if number is not None and number not in heard_at:
                heard_at[number] = (call_sid, times[bisect.bisect_right(starts, position) - 1])
            position = audio.find(DELTA_MARKER, position + 1)

    calls: dict[int, str] = {}
    crossed = 0
    delta: list[Latency] = []
    first_delta: list[Latency] = []
    for number, (call_sid, at) in heard_at.items():
        if number not in tap.deltas:
            continue  # a delta of another round's connection
        connection, first, sent = tap.deltas[number]
        if calls.setdefault(connection, call_sid) != call_sid:
            crossed += 1
            continue
        delta.append((sent - start, (at - sent) * 1000))
        if first:
            first_delta.append(delta[-1])

    append: list[Latency] = []
    for connection, frame, read in tap.appends:
        call_sid = calls.get(connection)
        sent = tap.sent[call_sid].get(frame) if call_sid is not None else None
        if sent is not None:
            append.append((sent - start, (read - sent) * 1000))

    clear: list[Latency] = []
    by_connection: dict[int, list[float]] = {}
    for connection, at in tap.speech_started:
        by_connection.setdefault(connection, []).append(at)
    for connection, starts_at in by_connection.items():
        call_clears = clears.get(calls.get(connection, ""), [])
        for i, at in enumerate(starts_at):
            until = starts_at[i + 1] if i + 1 < len(starts_at) else math.inf
            cleared = next((c for c in call_clears if at <= c < until), None)
            if cleared is not None:
                clear.append((at - start, (cleared - at) * 1000))

    return Edge(
        append,
        first_delta,
        delta,
        clear,
        appends=len(tap.appends),
        deltas=len(tap.deltas),
        first_deltas=sum(first for _, first, _ in tap.deltas.values()),
        speech_started=len(tap.speech_started),
        unmapped_connections=sum(c.key not in calls for c in tap.connections),
        crossed=crossed,
    )


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile by nearest rank; NaN without values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
