"""The conversation's books, as the edge keeps them: which of the model's items are queued for
the caller and how much audio each has received, which responses are cancelled (their late
audio dropped), the tools in flight, and the figures of the call.

Framework-free, no I/O, an injected clock. The adapter tells it what the model sent and asks it
what to do: on `speech_started`, clear and truncate item X at what the caller heard of it
(`heard(X)`, from playback's mark-clocked ledger) clamped to the audio received; on a response
that ends in function calls, wait and run them; on the next response's first audio, end the wait.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..mulaw import BYTES_PER_MS

# Cancelled responses remembered (their late deltas dropped): a call has a few per barge-in.
MAX_CANCELLED = 32
# Latency samples kept per call: enough for p95 on a long call, constant memory.
MAX_SAMPLES = 512


class Delta(enum.Enum):
    """What to do with one `response.output_audio.delta`."""

    DROP = "drop"  # of a response the caller interrupted (or the model cancelled): late audio
    START = "start"  # the first audio of an item: a new streamed utterance, keyed by the item
    MORE = "more"  # more of an item already playing


@dataclass(frozen=True, slots=True)
class Barge:
    """What a barge-in asks: clear what plays, then truncate `item_id` (if any) at
    `audio_end_ms`."""

    clear: bool
    item_id: str | None = None
    audio_end_ms: int = 0


@dataclass(frozen=True, slots=True)
class FunctionCall:
    call_id: str
    name: str
    arguments: str


@dataclass(slots=True)
class _Item:
    response_id: str
    received_bytes: int = 0
    open: bool = True  # more of its audio may come


@dataclass(slots=True)
class Figures:
    """The call's figures: model turns (responses that spoke), barge-ins, tools run and
    failed, late deltas dropped, and samples of response latency and tool duration (ms)."""

    turns: int = 0
    barge_ins: int = 0
    tools_run: int = 0
    tools_failed: int = 0
    late_audio: int = 0
    truncates: int = 0
    response_ms: list[float] = field(default_factory=list)
    tool_ms: list[float] = field(default_factory=list)


def quantile(samples: list[float], q: float) -> float | None:
    """The `q` quantile (nearest rank) of `samples`; None when there are none."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


class ConversationBook:
    """One call's conversation with the model. `heard(item_id)` answers how many ms of an item
    the caller has heard (mark echoes only); `clock()` is seconds on any monotonic clock."""

    def __init__(self, heard: Callable[[str], int], clock: Callable[[], float]) -> None:
        self._heard = heard
        self._clock = clock
        self.figures = Figures()
        # Items whose audio is queued or playing, oldest first: the first is what plays.
        self._queued: OrderedDict[str, _Item] = OrderedDict()
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._spoke: set[str] = set()  # responses that sent audio (turns), this call
        self.current: str | None = None  # the response being generated
        self.tools_waiting = False  # a wait for tools: it ends at the answer's first audio
        self.speaking = False  # the caller, by the server's VAD
        self._stopped_at: float | None = None  # speech_stopped, until the answer's first audio

    @property
    def generating(self) -> bool:
        """A response is being generated, and not cancelled yet."""
        return self.current is not None and self.current not in self._cancelled

    def response_created(self, response_id: str) -> None:
        self.current = response_id

    def audio_delta(self, response_id: str, item_id: str, size: int) -> Delta:
        """`size` bytes of an item's audio arrived: drop them, or start or extend its
        utterance. The answer's first audio also ends a tools wait (see `tools_waiting`)."""
        if response_id in self._cancelled:
            self.figures.late_audio += 1
            return Delta.DROP
        item = self._queued.get(item_id)
        kind = Delta.MORE
        if item is None:
            item = self._queued[item_id] = _Item(response_id)
            kind = Delta.START
        item.received_bytes += size
        if response_id not in self._spoke:
            self._spoke.add(response_id)
            self.figures.turns += 1
            if self._stopped_at is not None:
                self._sample(self.figures.response_ms, (self._clock() - self._stopped_at) * 1000)
                self._stopped_at = None
        return kind

    def audio_done(self, item_id: str) -> bool:
        """The item's audio is complete: True when its utterance is to be closed now (it is
        open: not dropped, not cleared, not closed already)."""
        item = self._queued.get(item_id)
        if item is None or not item.open:
            return False
        item.open = False
        return True

    def still_open(self, response_id: str | None = None) -> list[str]:
        """The response ended (None: the connection did): its items whose audio never said
        done, now closed; their utterances end with what they have."""
        items = [
            i
            for i, item in self._queued.items()
            if item.open and response_id in (None, item.response_id)
        ]
        for item_id in items:
            self._queued[item_id].open = False
        return items

    def utterance_ended(self, item_id: str) -> None:
        """The item's utterance is over (heard to its end, or cleared): it no longer plays."""
        self._queued.pop(item_id, None)

    def response_done(self, response_id: str, status: str, calls: list[FunctionCall]) -> bool:
        """The response ended; True when its function calls are to be run now (a completed
        response only: a cancelled one's calls were never meant)."""
        if self.current == response_id:
            self.current = None
        if status != "completed":
            self._cancel(response_id)
            return False
        return bool(calls)

    def tools_started(self, calls: list[FunctionCall]) -> None:
        self.tools_waiting = True
        self.figures.tools_run += len(calls)

    def tool_finished(self, ok: bool, duration_s: float) -> None:
        if not ok:
            self.figures.tools_failed += 1
        self._sample(self.figures.tool_ms, duration_s * 1000)

    def answer_started(self) -> bool:
        """The first audio of the answer after tools: True when that ends a tools wait."""
        waiting, self.tools_waiting = self.tools_waiting, False
        return waiting

    def speech_started(self, interrupt: bool = True) -> Barge:
        """The caller started speaking: they interrupt the assistant, unless `interrupt` is off
        (then the assistant talks on)."""
        self._stopped_at = None
        self.speaking = True
        if not interrupt:
            return Barge(clear=False)
        return self.interrupt()

    def interrupt(self) -> Barge:
        """The caller interrupts (by speech or a key): the response being generated is
        cancelled (its late audio will be dropped); if the model's audio plays or is queued,
        clear it and truncate the item that plays at what was heard of it, clamped to the audio
        received; an item with no audio yet is never truncated."""
        if self.current is not None:
            self._cancel(self.current)
        if not self._queued:
            return Barge(clear=False)
        self.figures.barge_ins += 1
        item_id, item = next(iter(self._queued.items()))
        received_ms = item.received_bytes // BYTES_PER_MS
        for queued in self._queued.values():
            self._cancel(queued.response_id)
        self._queued.clear()
        if received_ms <= 0:
            return Barge(clear=True)
        self.figures.truncates += 1
        heard = max(0, min(self._heard(item_id), received_ms))
        return Barge(clear=True, item_id=item_id, audio_end_ms=heard)

    def speech_stopped(self) -> None:
        """The caller stopped speaking: the answer's latency is timed from now."""
        self.speaking = False
        self._stopped_at = self._clock()

    def summary(self) -> str:
        """The figures as the call's summary line fields (late deltas are the call's own
        `late_audio=`)."""
        f = self.figures
        p50, p95 = quantile(f.response_ms, 0.5), quantile(f.response_ms, 0.95)
        fields = [
            f"turns={f.turns}",
            f"barge_ins={f.barge_ins}",
            f"truncates={f.truncates}",
            f"tools={f.tools_run}",
            f"tool_failures={f.tools_failed}",
            f"response_ms_p50={'-' if p50 is None else round(p50)}",
            f"response_ms_p95={'-' if p95 is None else round(p95)}",
        ]
        return " ".join(fields)

    def _cancel(self, response_id: str) -> None:
        self._cancelled[response_id] = None
        while len(self._cancelled) > MAX_CANCELLED:
            self._cancelled.popitem(last=False)

    @staticmethod
    def _sample(samples: list[float], value: float) -> None:
        if len(samples) >= MAX_SAMPLES:
            samples.pop(0)
        samples.append(value)
