"""What the fake Realtime server says and how it misbehaves: a frozen, plain-data script.

A test builds one `Script` and hands it to `FakeRealtime`; the CLI builds one from its options.
Responses are numbered per session from 0 in the order they are asked for (a `response.create`
accepted, or a turn the server VAD ends with `create_response`): response N says `replies[N]`,
or `default_reply` past the end.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from ...mulaw import BYTES_PER_MS, linear_to_mulaw

# 400 Hz at 8 kHz is 20 samples a period: one period, repeated, is any length of the tone.
_TONE_PERIOD = linear_to_mulaw(round(6000 * math.sin(2 * math.pi * i / 20)) for i in range(20))


@dataclass(frozen=True)
class FunctionCall:
    """A tool the model calls: `arguments` is the JSON text the model would write."""

    name: str
    arguments: str = "{}"


@dataclass(frozen=True)
class Reply:
    """One response: `audio_ms` of speech (0 for none) with its transcript, then the function
    calls, if any (one response can hold a spoken preamble and a call). `failed` (an error code:
    rate_limit_exceeded, server_error...) ends it at once with status failed, on the
    connections that fail (`Script.fail_connections`); `incomplete` (content_filter,
    max_output_tokens) ends it after its audio with status incomplete, its calls left out."""

    audio_ms: int = 1200
    transcript: str = "Hello! How can I help you today?"
    function_calls: tuple[FunctionCall, ...] = ()
    failed: str | None = None
    incomplete: str | None = None


@dataclass(frozen=True)
class Script:
    """The fake's behaviour; every field has a default that plays a well-behaved model."""

    replies: tuple[Reply, ...] = ()
    default_reply: Reply = Reply()
    # Deliberately odd delta sizes (not multiples of a 160-byte frame), cycled: the edge must
    # re-frame the model's audio, as it must with OpenAI's.
    chunk_bytes: tuple[int, ...] = (1117, 883, 1733)
    # Ms of audio sent per ms of wall clock (OpenAI sends faster than real time); None sends
    # every delta at once. Paced, a barge-in can land mid-response.
    speed: float | None = 4.0
    # Wall-clock ms from a response's audio item to its first delta: the model's time to first
    # audio (a window where the item exists but has no audio yet).
    first_delta_ms: int = 0
    # After a response is cancelled by a barge-in, this many more of its deltas still come,
    # after its `response.done` (the race peers get wrong: the edge must drop them).
    late_deltas: int = 0
    # Server VAD on the input clock: a 20 ms frame with an RMS over this is voiced; this much
    # voiced audio in a row starts speech. Silence to end it is the session's
    # silence_duration_ms.
    vad_threshold_rms: int = 500
    vad_start_ms: int = 60
    # Failure modes.
    refuse_keys: frozenset[str] = frozenset()  # these API keys get HTTP 401 at the handshake
    hang_handshake: bool = False  # accept TCP, never answer the upgrade
    fail_after_s: float | None = None  # send a session-ending server_error, close 1011
    # Which connections (1, 2...) fail (fail_after_s, malformed_after_s, Reply.failed); None: all.
    fail_connections: frozenset[int] | None = None
    malformed_after_s: float | None = None  # send `malformed_message` once, the session goes on
    malformed_message: str = '{"type": "response.output_audio.delta", "delta": '  # not JSON
    session_cap_s: float | None = None  # OpenAI's 60-minute cap, scaled: close 1001
    rate_limits_updated: bool = True  # `rate_limits.updated` after each `response.created`
    rate_limited_responses: frozenset[int] = frozenset()  # these numbers get rate_limit_exceeded

    # What the caller said in each turn, as the session's input transcription gives it (when
    # the session asks for one), cycled; none scripted: "Caller turn N."
    caller_transcripts: tuple[str, ...] = ()

    def caller_said(self, turn: int) -> str:
        """The transcript of the caller's turn `turn` (1-based, per session)."""
        if not self.caller_transcripts:
            return f"Caller turn {turn}."
        return self.caller_transcripts[(turn - 1) % len(self.caller_transcripts)]

    def fails(self, connection: int) -> bool:
        """Whether the scripted failures happen on connection `connection` (1-based)."""
        return self.fail_connections is None or connection in self.fail_connections

    def reply(self, number: int) -> Reply:
        """What response `number` (0-based, per session) says."""
        return self.replies[number] if number < len(self.replies) else self.default_reply


def tone(start: int, length: int) -> bytes:
    """`length` bytes of the scripted voice (a mu-law tone) from byte `start` of it on."""
    offset = start % len(_TONE_PERIOD)
    repeats = (offset + length) // len(_TONE_PERIOD) + 1
    return (_TONE_PERIOD * repeats)[offset : offset + length]


def chunks(chunk_bytes: tuple[int, ...], total: int | None, start: int = 0) -> Iterator[bytes]:
    """The deltas of the scripted voice from byte `start`: sizes cycled from `chunk_bytes`, the
    last one cut at `total` bytes (None: endless, for late deltas)."""
    position, index = start, 0
    while total is None or position < total:
        size = chunk_bytes[index % len(chunk_bytes)]
        if total is not None:
            size = min(size, total - position)
        yield tone(position, size)
        position += size
        index += 1


def audio_bytes(ms: int) -> int:
    """Mu-law bytes in `ms` of audio."""
    return ms * BYTES_PER_MS
