"""What the call simulator reports: each call's result, the run's, and the running totals
handed to the progress callback and kept per call while it plays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from websockets.frames import CloseCode

from .script import FRAMES_PER_SECOND


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
    # With a webhook (--answer): what the stream's <Connect action> answered once it closed.
    then: str | None = None
    # The stream this result is about: the call's last one when it had several legs.
    stream_sid: str = ""
    # A leg after the first: ms from the stream before it closing to this one open.
    turnaround_ms: float | None = None
    # A call that followed a <Redirect>: each leg's own result, in order; the fields above are
    # then the call's totals.
    legs: tuple[CallResult, ...] = ()

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
        if self.legs:
            legs = " -> ".join(leg.leg_line() for leg in self.legs)
            parts.append(f"{len(self.legs)} legs: {legs}")
        elif self.then is not None:
            parts.append(f"then {self.then}")
        return f"call {self.n} {self.call_sid}: {', '.join(parts)}"

    def leg_line(self) -> str:
        """One leg, in a few words: its stream, when it opened, what it heard, what followed."""
        parts = [self.stream_sid]
        if self.close_code == CloseCode.ABNORMAL_CLOSURE:
            parts.append("dropped")
        if self.turnaround_ms is not None:
            parts.append(f"opened {self.turnaround_ms:.0f} ms after the last")
        parts.append(f"audio {self.audio_ms:.0f} ms" if self.heard else "nothing to play")
        if self.then is not None:
            parts.append(f"then {self.then}")
        return f"[{', '.join(parts)}]"


def joined(legs: Sequence[CallResult], recording: Path | None) -> CallResult:
    """One call's result from its legs' (a call that followed a <Redirect>): what every leg sent
    and heard, in all; how the last ended; the first error; one recording across them."""
    if len(legs) == 1:
        return replace(legs[0], recording=recording)
    heard = [leg for leg in legs if leg.heard]
    clears = [leg.clear_ms for leg in legs if leg.clear_ms is not None]
    last = legs[-1]
    return CallResult(
        last.n,
        last.call_sid,
        sum(leg.media_frames for leg in legs),
        sum(leg.messages for leg in legs),
        last.close_code,
        next((leg.error for leg in legs if leg.error), None),
        pressed=tuple(press for leg in legs for press in leg.pressed),
        wait_to_chime_ms=next(
            (leg.wait_to_chime_ms for leg in legs if leg.wait_to_chime_ms is not None), None
        ),
        clear_ms=tuple(ms for leg in clears for ms in leg) if clears else None,
        audio_ms=sum(leg.audio_ms or 0.0 for leg in heard) if heard else None,
        underruns=sum(leg.underruns or 0 for leg in heard) if heard else None,
        max_outstanding_ms=max(leg.max_outstanding_ms or 0.0 for leg in heard) if heard else None,
        clears=sum(leg.clears or 0 for leg in heard) if heard else None,
        marks_echoed=sum(leg.marks_echoed or 0 for leg in heard) if heard else None,
        malformed=sum(leg.malformed for leg in legs),
        unknown=sum(leg.unknown for leg in legs),
        recording=recording,
        held_back=sum(leg.held_back for leg in legs),
        then=last.then,
        stream_sid=last.stream_sid,
        legs=tuple(legs),
    )


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


@dataclass(slots=True)
class Sent:
    """What one call has sent so far, and how often its frames were held back."""

    media: int = 0
    messages: int = 0
    held_back: int = 0
