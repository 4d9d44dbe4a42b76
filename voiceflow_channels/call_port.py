"""The narrow port through which an assistant speaks to its call: who is calling, what to play,
clear, wait, hang up or transfer, and how much of an utterance the caller has heard.

Framework-free. `TwilioStreamConsumer` implements it for a live stream; tests hand an assistant
`voiceflow_channels.testing.FakeCall` instead, with no websocket at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .records.timeline import Timeline


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who is on the call, from the stream's `start` (the caller's number and the tenant only
    from allowlisted custom parameters, as `parse_twilio_start` cleaned them)."""

    call_sid: str
    stream_sid: str
    tenant_id: str | None = None
    from_number: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)


class CallPort(Protocol):
    """What an assistant may do to its call. `play`, `play_more` and `clear` behave as the
    consumer's methods of the same names; `transfer` raises ValueError for a destination off
    VOICEFLOW_TRANSFER_ALLOWLIST (logged and counted once, by the port)."""

    @property
    def info(self) -> CallInfo: ...

    @property
    def debug(self) -> bool: ...

    @property
    def waiting_for(self) -> str | None:
        """The reason of the wait in progress, or None."""
        ...

    @property
    def playing(self) -> bool:
        """Audio other than the chime is queued or unconfirmed at Twilio."""
        ...

    async def play(
        self, mulaw: bytes, label: str = "speech", *, key: str | None = None, final: bool = True
    ) -> None: ...

    async def play_more(self, key: str, mulaw: bytes, *, final: bool = False) -> None: ...

    async def clear(self) -> None: ...

    def start_wait(self, reason: str) -> None: ...

    def end_wait(self) -> None: ...

    async def hangup(self) -> None: ...

    async def transfer(self, to: str) -> None: ...

    def heard_ms(self, key: str) -> int:
        """How much of the utterance `key` the caller has heard (mark echoes only)."""
        ...

    @property
    def timeline(self) -> Timeline:
        """The call's events for its record: the assistant adds the caller's speech, barge-ins,
        tool runs, resumes and failures."""
        ...

    def late_audio(self) -> None:
        """Audio for an utterance the caller interrupted arrived and was dropped: counted in the
        call's `late_audio=`."""
        ...


class Assistant(Protocol):
    """What a consumer drives when an assistant is mounted (`build_router(assistant=...)`): one
    instance per call, attached once the stream has started, detached when it ends."""

    async def attach(self, port: CallPort) -> None: ...

    def hear(self, payload_b64: str) -> None:
        """One inbound frame, base64 as Twilio sent it (the hot path: no I/O, no await)."""
        ...

    async def pressed(self, key: str) -> None:
        """The caller pressed a key (0-9, *, #, A-D), as Twilio's `dtmf` said."""
        ...

    def utterance_ended(self, key: str, played_ms: int, cleared_ms: int) -> None: ...

    async def quiet_moment(self) -> None:
        """Return at the call's next quiet moment (nothing playing or being said, no tool
        running), its conversation kept: then the call may move to another process."""
        ...

    async def detach(self) -> None: ...

    def summary(self) -> str:
        """`name=value` fields for the call's summary line."""
        ...

    def transcript(self) -> list[dict[str, str]]:
        """The call's words, in order, for its record: `{"role": "user" | "assistant" | "tool",
        "text": ...}`, the assistant's as the caller heard them."""
        ...
