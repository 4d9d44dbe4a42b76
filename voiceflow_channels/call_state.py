"""The state of one Twilio stream: who is calling, what arrived, what was dropped and why, and
the books of what it played.

Framework-free. Memory is constant per call: media is decoded, counted and discarded (only the
last frame is held, for the `on_audio` hook).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

from .lag import InboundLag
from .playback import Playback
from .twilio_events import (
    DEFAULT_LIMITS,
    EventName,
    Limits,
    decode_message,
    event_name,
    mask_phone,
    media_audio,
    parse_twilio_dtmf,
    parse_twilio_mark,
    parse_twilio_start,
    sequence_number,
)
from .wait_state import WaitState

# What a frame was taken as: the event it was, or "drop" (counted under a reason in `drops`).
FrameKind = EventName | Literal["drop"]


class CallState:
    """Feed it every decoded event with `handle`; it counts, validates and never raises."""

    __slots__ = (
        "_clock",
        "_max_b64",
        "account_sid",
        "audio",
        "audio_b64",
        "bytes",
        "call_sid",
        "drops",
        "dtmf",
        "frames",
        "from_number",
        "gaps",
        "hook_errors",
        "lag",
        "last_dtmf",
        "last_mark",
        "last_seq",
        "limits",
        "marks",
        "out_of_order",
        "playback",
        "start",
        "stopped",
        "stream_sid",
        "tenant_id",
        "timed_out",
        "to_number",
        "unknown",
        "wait",
    )

    def __init__(
        self,
        wait: WaitState | None = None,
        limits: Limits = DEFAULT_LIMITS,
        playback: Playback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wait = wait if wait is not None else WaitState()
        self._clock = clock
        self.lag = InboundLag()
        self.limits = limits
        self._max_b64 = limits.max_payload_b64_chars
        self.playback = playback if playback is not None else Playback()
        self.start: dict[str, Any] | None = None
        self.audio = b""
        self.audio_b64 = ""  # the last frame's payload as Twilio sent it (base64)
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.account_sid: str | None = None
        self.from_number: str | None = None
        self.to_number: str | None = None
        self.tenant_id: str | None = None
        self.frames = 0
        self.bytes = 0
        self.gaps = 0
        self.out_of_order = 0
        self.marks = 0
        self.dtmf = 0
        self.unknown = 0
        self.hook_errors = 0
        self.timed_out = 0  # streamed utterances closed because their next part never came
        self.last_seq: int | None = None
        self.last_mark: str | None = None
        self.last_dtmf: str | None = None
        self.stopped = False
        self.drops: Counter[str] = Counter()

    @property
    def started(self) -> bool:
        return self.stream_sid is not None

    @property
    def malformed(self) -> int:
        """Every frame dropped, whatever the reason (see `drops` for the reasons)."""
        return sum(self.drops.values())

    @property
    def received(self) -> int:
        """Frames that arrived after `start`, whatever they were: it moves while the stream
        lives."""
        return self.frames + self.marks + self.dtmf + self.unknown + self.malformed

    def drop(self, reason: str) -> FrameKind:
        """Count one dropped frame under `reason`; returns "drop" for the caller's dispatch."""
        self.drops[reason] += 1
        return "drop"

    def receive_text(self, text: str) -> FrameKind:
        """Apply one websocket text frame; returns what it was taken as (see `handle`)."""
        # UTF-8 takes at least a byte a character: only non-ASCII text (str.isascii is O(1))
        # needs encoding to be measured.
        limit = self.limits.max_message_bytes
        if len(text) > limit or (not text.isascii() and _utf8_size(text) > limit):
            return self.drop("oversize")
        d = decode_message(text)
        if d is None:
            return self.drop("not_json_event")
        # 50 a second: a media frame of a live stream goes straight to its handler.
        if d["event"] == "media" and self.stream_sid is not None and not self.stopped:
            return self._media(d)
        return self.handle(d)

    def handle(self, d: dict[str, Any]) -> FrameKind:
        """Apply one decoded event; returns what it was taken as: an event name, "unknown" or
        "drop"."""
        event = event_name(d)
        if event is None:
            return self.drop("not_json_event")
        if self.stopped:
            return self.drop("after_stop")
        if event == "start":
            return self._start(d)
        if event == "unknown":
            self.unknown += 1
            return event
        if event == "connected":
            return event
        if not self.started:
            return self.drop("before_start")
        if event == "media":
            return self._media(d)
        if d.get("streamSid") != self.stream_sid:
            return self.drop("wrong_stream")
        # A frame that arrived is not lost, even when its content is bad: track it first.
        if not self._sequence(sequence_number(d)):
            return self.drop("bad_sequence")
        if event == "stop":
            self.stopped = True
            self.wait.notify_wait_end()
        elif event == "mark":
            name = parse_twilio_mark(d)
            if name is None:
                return self.drop("bad_mark")
            self.marks += 1
            self.last_mark = name
        else:
            digit = parse_twilio_dtmf(d)
            if digit is None:
                return self.drop("bad_dtmf")
            self.dtmf += 1
            self.last_dtmf = digit
        return event

    def _media(self, d: dict[str, Any]) -> FrameKind:
        """A `media` event of the live stream (started, not stopped): the same checks as any
        event's, then its audio and its lag."""
        if d.get("streamSid") != self.stream_sid:
            return self.drop("wrong_stream")
        if not self._sequence(sequence_number(d)):
            return self.drop("bad_sequence")
        media: Any = d.get("media")  # a dict once media_audio has accepted it
        audio = media_audio(media, self._max_b64)
        if audio is None:
            return self.drop("bad_media")
        self.frames += 1
        self.bytes += len(audio)
        self.audio = audio
        self.audio_b64 = media["payload"]  # kept as is: a model takes base64 too
        # Twilio's media.timestamp (ms since the stream started, digits), for the lag.
        stamp = media.get("timestamp")
        if type(stamp) is str and len(stamp) < 16 and stamp.isascii() and stamp.isdigit():
            self.lag.record(int(stamp), self._clock() * 1000)
        return "media"

    def _start(self, d: dict[str, Any]) -> FrameKind:
        if self.started:
            return self.drop("second_start")
        start = parse_twilio_start(d, self.limits)
        if start is None:
            return self.drop("bad_start")
        self._sequence(sequence_number(d))
        self.start = start
        self.stream_sid = start["streamSid"]
        self.call_sid = start["callSid"]
        self.account_sid = start["accountSid"]
        self.tenant_id = start["tenant_id"]
        self.from_number = start["from_number"]
        self.to_number = start["to_number"]
        self.wait.label = self.call_sid
        if start["droppedParameters"]:
            self.drops["custom_parameter"] += start["droppedParameters"]
        return "start"

    def _sequence(self, seq: int | None) -> bool:
        """Track `sequenceNumber` of a valid frame; False when it has none. A jump forward counts
        the missing frames as gaps; one that does not move forward counts as out of order, and
        tracking resumes from it, so one odd number cannot poison the rest of the call."""
        if seq is None:
            return False
        last = self.last_seq
        if last is not None:
            if seq <= last:
                self.out_of_order += 1
            else:
                self.gaps += seq - last - 1
        self.last_seq = seq
        return True

    def counters(self) -> dict[str, int]:
        playback = self.playback
        return {
            "frames": self.frames,
            "bytes": self.bytes,
            "gaps": self.gaps,
            "out_of_order": self.out_of_order,
            "marks": self.marks,
            "dtmf": self.dtmf,
            "unknown": self.unknown,
            "malformed": self.malformed,
            "waits": self.wait.waits_started,
            "chimes": self.wait.chimes_due,
            "played_ms": playback.played_ms,
            "cleared_ms": playback.cleared_ms,
            "chime_ms": playback.filler_played_ms,
            "refused_audio": playback.refused,
            "stale_marks": playback.stale_marks,
            "late_audio": playback.late_audio,
            "lost_parts": playback.lost_parts,
            "timed_out": self.timed_out,
            "hook_errors": self.hook_errors,
        }

    def summary(self) -> str:
        """One log line for the whole call: identity (number masked) and every counter."""
        counts = " ".join(f"{k}={v}" for k, v in self.counters().items())
        p99 = self.lag.quantile(0.99)
        counts += f" lag_p99_ms={'-' if p99 is None else p99}"
        reasons = ",".join(f"{k}:{v}" for k, v in sorted(self.drops.items())) or "-"
        return (
            f"callSid={self.call_sid or '-'} streamSid={self.stream_sid or '-'} "
            f"tenant={self.tenant_id or '-'} from={mask_phone(self.from_number)} "
            f"{counts} drops={reasons}"
        )


def _utf8_size(text: str) -> int:
    """The size of `text` on the wire; lone surrogates (which JSON escapes allow) count as 3."""
    return len(text.encode("utf-8", "surrogatepass"))
