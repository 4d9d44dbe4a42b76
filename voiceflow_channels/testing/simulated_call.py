"""Twilio-shaped call traffic, as the JSON text frames Twilio sends, for tests and the simulator.

Framework-free. Frames follow Twilio's documented messages: `connected`, `start` (with
customParameters), one `media` per 20 ms of 8 kHz mu-law (160 bytes), `mark`, `dtmf`, `stop`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial

from ..mulaw import FRAME_BYTES, FRAME_MS, MULAW_SILENCE


@dataclass(frozen=True, slots=True)
class Step:
    """One message of a call's script, not yet rendered: `render()` numbers it (sequenceNumber),
    so a sender that waits before sending renders after waiting, and whatever else it sends
    meanwhile (a mark echo) keeps its place in the numbering."""

    kind: str  # connected, start, media, mark, dtmf, press (a dtmf asked for), stop
    render: Callable[[], str]


def sid(prefix: str, n: int) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return f"{prefix}{n:032x}"


@dataclass
class SimulatedCall:
    """One call's frames. `sequenceNumber` runs across every event after `connected`."""

    n: int = 1
    tenant: str | None = "t1"
    caller: str | None = "+15550000001"
    audio: bytes = bytes([MULAW_SILENCE]) * FRAME_BYTES
    # The customParameters of the start, when a webhook's TwiML named them (`<Parameter>`s);
    # otherwise the start carries tenant_id and from.
    parameters: dict[str, str] | None = None
    call_sid: str = field(init=False)
    stream_sid: str = field(init=False)
    seq: int = field(init=False, default=0)
    chunk: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.call_sid = sid("CA", self.n)
        self.stream_sid = sid("MZ", self.n)
        # The streamSid the media templates were made for: the call's own audio's, and one that
        # takes the payload too.
        self._media_for: str | None = None
        self._media = self._media_with = ""

    def next_leg(self, leg: int) -> None:
        """The call goes on in a new stream (a `<Redirect>` followed): the same CallSid, a new
        StreamSid for leg `leg` (from 2), its sequence numbers and chunks from 1 again."""
        self.stream_sid = sid("MZ", (leg - 1) << 64 | self.n)
        self.seq = self.chunk = 0

    def _make_media_templates(self) -> None:
        self._media = self._media_template(base64.b64encode(self.audio).decode())
        self._media_with = self._media_template("%s")
        self._media_for = self.stream_sid

    def _media_template(self, payload: str) -> str:
        # Rendered once per streamSid with placeholders (no other % can occur: SIDs are hex, the
        # payload base64): a call sends 50 media frames a second, and formatting three numbers
        # costs a tenth of json.dumps.
        media = {
            "event": "media",
            "sequenceNumber": "%d",
            "streamSid": self.stream_sid,
            "media": {"track": "inbound", "chunk": "%d", "timestamp": "%d", "payload": payload},
        }
        return json.dumps(media)

    def _next(self) -> str:
        self.seq += 1
        return str(self.seq)

    def connected(self) -> str:
        return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, **custom: str) -> str:
        params = dict(custom)
        if self.parameters is not None:
            params = {**self.parameters, **params}
        else:
            if self.tenant is not None:
                params.setdefault("tenant_id", self.tenant)
            if self.caller is not None:
                params.setdefault("from", self.caller)
        return json.dumps(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": sid("AC", 1),
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": params,
                },
            }
        )

    def media(self) -> str:
        """The next media frame, carrying the call's `audio`."""
        if self._media_for != self.stream_sid:
            self._make_media_templates()
        self.chunk += 1
        self.seq += 1
        return self._media % (self.seq, self.chunk, self.chunk * FRAME_MS)

    def media_with(self, audio: bytes) -> str:
        """The next media frame, carrying `audio` (160 bytes) instead of the call's own."""
        if self._media_for != self.stream_sid:
            self._make_media_templates()
        self.chunk += 1
        self.seq += 1
        payload = base64.b64encode(audio).decode()
        return self._media_with % (self.seq, self.chunk, self.chunk * FRAME_MS, payload)

    def mark(self, name: str = "chime-1") -> str:
        return json.dumps(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def dtmf(self, digit: str = "1") -> str:
        return json.dumps(
            {
                "event": "dtmf",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def stop(self) -> str:
        return json.dumps(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": sid("AC", 1), "callSid": self.call_sid},
            }
        )

    def steps(
        self,
        frames: int,
        mark_every: int = 0,
        dtmf_every: int = 0,
        presses: Mapping[int, str] | None = None,
        talk: Mapping[int, bytes] | None = None,
    ) -> Iterator[Step]:
        """`whole_call`'s messages as unrendered steps."""
        yield Step("connected", self.connected)
        yield Step("start", self.start)
        presses = presses or {}
        talk = talk or {}
        # One step for every frame of the call's own audio: a call sends 50 a second.
        own_audio = Step("media", self.media)
        for i in range(1, frames + 1):
            audio = talk.get(i)
            yield own_audio if audio is None else Step("media", partial(self.media_with, audio))
            if mark_every and i % mark_every == 0:
                yield Step("mark", partial(self.mark, f"m{i}"))
            if dtmf_every and i % dtmf_every == 0:
                yield Step("dtmf", partial(self.dtmf, str(i % 10)))
            for key in presses.get(i, ""):
                yield Step("press", partial(self.dtmf, key))
        yield Step("stop", self.stop)

    def whole_call(
        self,
        frames: int,
        mark_every: int = 0,
        dtmf_every: int = 0,
        presses: Mapping[int, str] | None = None,
        talk: Mapping[int, bytes] | None = None,
    ) -> Iterator[str]:
        """connected, start, `frames` media (a mark / dtmf every N frames if asked, and after
        media frame i, counted from 1, a dtmf for each key in `presses[i]`), stop. Media frame i
        carries `talk[i]` when there is one, else the call's `audio`."""
        for step in self.steps(frames, mark_every, dtmf_every, presses, talk):
            yield step.render()
