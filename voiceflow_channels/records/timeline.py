"""A call's events with their times, for its record and its picture: the caller's speech, each
utterance played (and the part a clear cut), the chime, each tool run, barge-ins, resumes, the
end. Framework-free, an injected clock, bounded: past `max_events` the newest are dropped and
counted (the end is always kept)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

Kind = Literal[
    "speech", "utterance", "chime", "tool", "barge_in", "resume", "transfer", "failure", "end"
]
KINDS: tuple[Kind, ...] = (
    "speech",
    "utterance",
    "chime",
    "tool",
    "barge_in",
    "resume",
    "transfer",
    "failure",
    "end",
)
# A long call's worth (an hour of turns is a few hundred events); a row's JSON stays small.
MAX_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class Event:
    """`at_ms` since the leg started; `ms` how long it lasted (an utterance: the part played),
    `cut_ms` the part a clear dropped; `label` the utterance's, the tools', the ending's."""

    kind: Kind
    at_ms: int
    ms: int = 0
    cut_ms: int = 0
    label: str = ""
    failed: bool = False

    def saved(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_saved(cls, value: object) -> Event | None:
        """An event from `saved()`, or None for anything that is not one."""
        if not isinstance(value, dict) or value.get("kind") not in KINDS:
            return None
        at_ms, ms, cut_ms = (value.get(k, 0) for k in ("at_ms", "ms", "cut_ms"))
        if not all(type(n) is int and n >= 0 for n in (at_ms, ms, cut_ms)):
            return None
        label, failed = value.get("label", ""), value.get("failed", False)
        if not isinstance(label, str) or not isinstance(failed, bool):
            return None
        return cls(value["kind"], at_ms, ms, cut_ms, label[:200], failed)


class Timeline:
    """One leg's events; `clock()` is seconds on any monotonic clock, read at creation (the
    leg's start) and at each event."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_events: int = MAX_EVENTS
    ) -> None:
        self._clock = clock
        self._start = clock()
        self.max_events = max_events
        self.events: list[Event] = []
        self.dropped = 0
        self._speech_since: int | None = None

    def now_ms(self) -> int:
        return max(round((self._clock() - self._start) * 1000), 0)

    def add(
        self,
        kind: Kind,
        *,
        ms: int = 0,
        cut_ms: int = 0,
        label: str = "",
        at_ms: int | None = None,
        failed: bool = False,
    ) -> None:
        """An event now (or at `at_ms`)."""
        if len(self.events) >= self.max_events:
            self.dropped += 1
            return
        at = self.now_ms() if at_ms is None else at_ms
        self.events.append(Event(kind, at, ms, cut_ms, label, failed))

    def speech_started(self) -> None:
        if self._speech_since is None:
            self._speech_since = self.now_ms()

    def speech_stopped(self) -> None:
        since = self._speech_since
        if since is not None:
            self._speech_since = None
            self.add("speech", at_ms=since, ms=self.now_ms() - since)

    def played(self, label: str, played_ms: int, cleared_ms: int, *, chime: bool) -> None:
        """An utterance is over: it played `played_ms` up to now, then `cleared_ms` was cut."""
        at = max(self.now_ms() - played_ms, 0)
        kind: Kind = "chime" if chime else "utterance"
        self.add(kind, at_ms=at, ms=played_ms, cut_ms=cleared_ms, label=label)

    def tools_ran(self, names: str, since_ms: int, *, failed: bool) -> None:
        self.add("tool", at_ms=since_ms, ms=self.now_ms() - since_ms, label=names, failed=failed)

    def end(self, how: str) -> None:
        """The leg is over: speech in progress ends here, and the end is kept past the bound."""
        self.speech_stopped()
        self.max_events += 1
        self.add("end", label=how)

    def saved(self) -> list[dict[str, Any]]:
        return [e.saved() for e in self.events]
