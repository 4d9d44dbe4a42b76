"""Outbound audio for one call: a queue of utterances, sent mark-clocked, with a ledger each.

Framework-free, and no clock: Twilio's mark echoes are the clock. Twilio plays what it is sent
and echoes a mark once the audio before it has played; on `clear` it drops its buffer and echoes
the pending marks at once. So audio counts as played only when a mark after it echoes before a
clear: everything else that was queued counts as cleared, and played + cleared = queued.

Each clear starts a new playback generation, named in every mark (`vf<generation>.<n>`, and
`.end` on an utterance's last mark), so the echoes of cleared marks and any late audio of a
cleared utterance are recognised and ignored.

A streamed utterance (`play(..., final=False)`, then `extend`) arrives in parts of any size, and
Twilio plays whole 20 ms frames: a part's trailing partial frame waits for the next part, and
only the utterance's end (its final part, or `close`) pads its last frame with silence, never
its middle. In the ledger a partial frame counts as the whole frame it will become: `queued_ms`
is the audio so far rounded up to 20 ms, so it never changes when the utterance ends, and the
queue bound already holds the padding.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from .mulaw import BYTES_PER_MS, FRAME_BYTES, frames_ms, padding

DEFAULT_LEAD_MS = 300
DEFAULT_MARK_EVERY_MS = 100
DEFAULT_MAX_QUEUED_MS = 60_000
MARK_PREFIX = "vf"
END_SUFFIX = ".end"


class Media(NamedTuple):
    audio: bytes


class Mark(NamedTuple):
    name: str


class Clear(NamedTuple):
    pass


Outbound = Media | Mark | Clear


@dataclass(slots=True, eq=False)
class Utterance:
    """One utterance's audio still to send (whole frames, then while it is `open` a partial
    frame), the parts received, and its ledger in ms."""

    key: str
    label: str
    filler: bool
    pending: bytearray
    open: bool
    parts: int = 1
    queued_ms: int = 0
    sent_ms: int = 0
    played_ms: int = 0
    cleared_ms: int = 0

    @property
    def unsettled_ms(self) -> int:
        """Queued audio not yet known to be played or cleared."""
        return self.queued_ms - self.played_ms - self.cleared_ms


@dataclass(slots=True)
class Step:
    """What an operation asks of the transport: messages to send in order, and the utterances
    whose books closed (played + cleared = queued), for `on_playback`."""

    outbound: list[Outbound] = field(default_factory=list)
    ended: list[Utterance] = field(default_factory=list)

    def add(self, other: Step) -> Step:
        self.outbound += other.outbound
        self.ended += other.ended
        return self


class Playback:
    """One call's outbound audio. Never more than `lead_ms` is sent beyond what mark echoes have
    confirmed, a mark follows every `mark_every_ms` of audio, and at most `max_queued_ms` is
    queued and unsettled; audio past that is refused and counted."""

    __slots__ = (
        "_keys",
        "_marks",
        "_queue",
        "_unconfirmed",
        "cleared_ms",
        "filler_played_ms",
        "foreign_marks",
        "generation",
        "late_audio",
        "lead_ms",
        "lost_parts",
        "max_queued_ms",
        "outstanding_ms",
        "played_ms",
        "refused",
        "refused_ms",
        "segment_bytes",
        "stale_marks",
    )

    def __init__(
        self,
        lead_ms: int = DEFAULT_LEAD_MS,
        mark_every_ms: int = DEFAULT_MARK_EVERY_MS,
        max_queued_ms: int = DEFAULT_MAX_QUEUED_MS,
    ) -> None:
        if mark_every_ms < FRAME_BYTES // BYTES_PER_MS or lead_ms < mark_every_ms:
            raise ValueError(
                f"need 20 <= mark_every_ms <= lead_ms, not {mark_every_ms} and {lead_ms}"
            )
        self.lead_ms = lead_ms
        self.segment_bytes = mark_every_ms * BYTES_PER_MS // FRAME_BYTES * FRAME_BYTES
        self.max_queued_ms = max_queued_ms
        self.generation = 1
        self.outstanding_ms = 0
        self.played_ms = 0
        self.cleared_ms = 0
        self.filler_played_ms = 0
        self.refused = 0
        self.refused_ms = 0
        self.late_audio = 0
        self.lost_parts = 0
        self.stale_marks = 0
        self.foreign_marks = 0
        self._queue: deque[Utterance] = deque()
        self._unconfirmed: deque[tuple[str, Utterance, int]] = deque()
        self._marks = 0
        self._keys = 0

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing unconfirmed at Twilio."""
        return not self._queue

    @property
    def playing(self) -> Utterance | None:
        return self._queue[0] if self._queue else None

    def heard_ms(self, key: str) -> int:
        """How much of the queued utterance `key` the caller has heard (mark echoes only); 0 for
        one not queued (never started, or already over)."""
        return next((u.played_ms for u in self._queue if u.key == key), 0)

    @property
    def unsettled_ms(self) -> int:
        return sum(u.unsettled_ms for u in self._queue)

    @property
    def oldest_open(self) -> Utterance | None:
        """The first utterance still waiting for parts: everything after it waits too."""
        return next((u for u in self._queue if u.open), None)

    def play(
        self,
        label: str,
        audio: bytes,
        *,
        key: str | None = None,
        final: bool = True,
        filler: bool = False,
    ) -> Step:
        """Queue a new utterance (`final=False`: more of it comes through `extend(key, ...)`).

        A filler (the chime) plays only when nothing else is queued; any other utterance clears
        a filler first, so a filler never delays the assistant and is never heard after it.
        """
        step = Step()
        if filler and self._queue:
            return step
        if not filler and self._queue and self._queue[0].filler:
            step.add(self.clear())
        if key is None:
            self._keys += 1
            key = f"u{self._keys}"
        if self._refused(frames_ms(len(audio))):
            return step
        utterance = Utterance(key, label, filler, bytearray(), open=True)
        self._queue.append(utterance)
        return step.add(self._take(utterance, audio, final=final))

    def extend(self, key: str, audio: bytes, *, final: bool, part: int | None = None) -> Step:
        """More audio of the open utterance `key`: its part number `part` (0 was `play`'s).
        Audio of an utterance that was cleared, refused or already ended is ignored and counted
        (`late_audio`); parts that never came are counted (`lost_parts`), the rest still plays."""
        utterance = self._open(key)
        if utterance is None:
            self.late_audio += 1
            return Step()
        if part is not None:
            self.lost_parts += max(part - utterance.parts, 0)
        utterance.parts += 1
        held = len(utterance.pending)
        if self._refused(frames_ms(held + len(audio)) - frames_ms(held)):
            # The rest of it would be refused too: it ends with what it has.
            return self._take(utterance, b"", final=True)
        return self._take(utterance, audio, final=final)

    def close(self, key: str) -> Step:
        """End the open utterance `key` as if its final part had come (the adapter's answer to a
        part that never comes): what it has plays out, and parts that still come are late audio.
        Nothing happens if no utterance `key` is open."""
        utterance = self._open(key)
        return Step() if utterance is None else self._take(utterance, b"", final=True)

    def clear(self) -> Step:
        """Drop everything: one `clear` for Twilio's buffer, and every utterance's unconfirmed
        and unsent audio counted as cleared. A no-op when idle (Twilio holds nothing)."""
        if not self._queue:
            return Step()
        self.generation += 1
        self._unconfirmed.clear()
        self.outstanding_ms = 0
        step = Step([Clear()], list(self._queue))
        for utterance in self._queue:
            self._close(utterance)
        self._queue.clear()
        return step

    def clear_filler(self) -> Step:
        """Clear the filler if it is what plays (a filler is only ever queued alone)."""
        return self.clear() if self._queue and self._queue[0].filler else Step()

    def end(self) -> Step:
        """The call is over: close every book, unconfirmed audio counted as cleared."""
        step = Step([], list(self._queue))
        for utterance in self._queue:
            self._close(utterance)
        self._queue.clear()
        self._unconfirmed.clear()
        self.outstanding_ms = 0
        return step

    def on_mark(self, name: str) -> Step:
        """A mark echoed by Twilio: credit the audio before it as played, then refill the lead.
        Marks of an earlier generation (echoed by a clear, or late) are stale and ignored."""
        generation = _generation(name)
        if generation is None:
            self.foreign_marks += 1
            return Step()
        if generation != self.generation or all(n != name for n, _, _ in self._unconfirmed):
            self.stale_marks += 1
            return Step()
        step = Step()
        # Twilio echoes in order: an echo confirms every mark before it too.
        while self._unconfirmed:
            mark, utterance, ms = self._unconfirmed.popleft()
            self.outstanding_ms -= ms
            utterance.played_ms += ms
            self.played_ms += ms
            if utterance.filler:
                self.filler_played_ms += ms
            step.add(self._settle_if_done(utterance))
            if mark == name:
                break
        step.outbound += self._pump()
        return step

    def _pump(self) -> list[Outbound]:
        out: list[Outbound] = []
        for utterance in self._queue:
            # Whole frames only: an open utterance's partial frame waits for its next part.
            while len(utterance.pending) >= FRAME_BYTES:
                ready = len(utterance.pending) // FRAME_BYTES * FRAME_BYTES
                chunk = bytes(utterance.pending[: min(ready, self.segment_bytes)])
                ms = len(chunk) // BYTES_PER_MS
                if self.outstanding_ms + ms > self.lead_ms:
                    return out
                del utterance.pending[: len(chunk)]
                end = not utterance.open and not utterance.pending
                out += [Media(chunk), self._mark(utterance, ms, end=end)]
                self.outstanding_ms += ms
                utterance.sent_ms += ms
            if utterance.open:
                return out  # what follows waits for the rest of this one
        return out

    def _open(self, key: str) -> Utterance | None:
        return next((u for u in self._queue if u.key == key and u.open), None)

    def _take(self, utterance: Utterance, audio: bytes, *, final: bool) -> Step:
        """Add `audio` to `utterance` and send what is due; its end (`final`) pads its last
        frame with silence."""
        pending = utterance.pending
        before = frames_ms(len(pending))
        pending += audio
        if final:
            pending += padding(len(pending))
            utterance.open = False
        utterance.queued_ms += frames_ms(len(pending)) - before
        step = self._settle_if_done(utterance)
        if final and not pending and utterance in self._queue:
            # Its audio was all sent before its end was known: its last mark had no `.end`, so
            # a bare one says where it ends (Twilio echoes it once the audio before it played).
            step.outbound.append(self._mark(utterance, 0, end=True))
        step.outbound += self._pump()
        return step

    def _mark(self, utterance: Utterance, ms: int, *, end: bool) -> Mark:
        """The next mark, after `ms` of `utterance`'s audio; awaited until Twilio echoes it."""
        self._marks += 1
        name = f"{MARK_PREFIX}{self.generation}.{self._marks}" + (END_SUFFIX if end else "")
        self._unconfirmed.append((name, utterance, ms))
        return Mark(name)

    def _settle_if_done(self, utterance: Utterance) -> Step:
        if utterance.open or utterance.unsettled_ms or utterance not in self._queue:
            return Step()
        self._queue.remove(utterance)
        return Step([], [utterance])

    def _close(self, utterance: Utterance) -> None:
        unsettled = utterance.unsettled_ms
        utterance.cleared_ms += unsettled
        self.cleared_ms += unsettled
        utterance.pending.clear()
        utterance.open = False

    def _refused(self, ms: int) -> bool:
        """Would `ms` more audio pass the queue bound? Then it is refused, and counted."""
        if ms + self.unsettled_ms <= self.max_queued_ms:
            return False
        self.refused += 1
        self.refused_ms += ms
        return True


def _generation(name: str) -> int | None:
    """The generation in one of our mark names, else None."""
    if not name.startswith(MARK_PREFIX):
        return None
    head = name[len(MARK_PREFIX) :].partition(".")[0]
    return int(head) if head.isascii() and head.isdigit() and len(head) < 10 else None
