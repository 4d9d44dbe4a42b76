"""A finished leg of a call as plain data, ready for its record: who called, when, how it
ended, the figures of its summary line, its timeline, and (by setting) its words and audio.

Framework-free: the consumer builds one at the leg's end; `writer` puts it in the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .tape import Tape

# The summary line's fields that say who the call is, not what happened on it.
IDENTITY = frozenset({"callSid", "streamSid", "tenant", "from"})
# How a leg ended, in the consumer's words, where the record says it otherwise (hangup,
# transfer, timeout, drained and handed_over are said as they are).
ENDINGS = {"stop": "caller_hung_up", "disconnect": "disconnected"}


def figures_of(summary: str) -> dict[str, int | str]:
    """The `name=value` fields of a summary line, numbers as ints (`-` and lists as text),
    without the call's identity."""
    figures: dict[str, int | str] = {}
    for token in summary.split():
        name, sep, value = token.partition("=")
        if sep and name not in IDENTITY:
            figures[name] = int(value) if value.isascii() and value.isdigit() else value
    return figures


@dataclass(slots=True)
class FinishedLeg:
    """One stream of a call (a call that moved to another process has several)."""

    call_sid: str
    stream_sid: str
    tenant: str | None
    caller: str | None
    started_at: datetime
    ended_at: datetime
    how: str
    figures: dict[str, int | str]
    events: list[dict[str, Any]]
    dropped_events: int = 0
    transcript: list[dict[str, str]] = field(default_factory=list)
    called: str | None = None  # the number dialled (Twilio's `To`)
    tape: Tape | None = None  # the leg's audio (VOICEFLOW_RECORD_AUDIO): a WAV off the loop

    @property
    def ending(self) -> str:
        """How the leg ended, in the record's words; a model failure wins over the hang-up or
        transfer it led to."""
        if any(e.get("kind") == "failure" for e in self.events):
            return "model_failure"
        return ENDINGS.get(self.how, self.how)

    @property
    def transfer_to(self) -> str:
        return next((e["label"] for e in self.events if e.get("kind") == "transfer"), "")

    def leg(self) -> dict[str, Any]:
        """The leg as its record's `legs` keeps it."""
        return {
            "stream_sid": self.stream_sid,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "how": self.ending,
            "figures": self.figures,
            "events": self.events,
            "dropped_events": self.dropped_events,
        }
