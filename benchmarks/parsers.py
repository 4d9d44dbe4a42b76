"""Inbound `media`: our hand-written decoder against a pydantic model of the same event.

    python -m benchmarks.parsers [--frames 100000]

Both take one websocket text frame to the decoded audio and the sequence number, checking the
same things (an object, event "media", a digits-only sequenceNumber, a base64 payload). The
figure is microseconds per frame, best of 5 runs in this process, and their ratio.
"""

from __future__ import annotations

import argparse
import base64
import sys
import timeit
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voiceflow_channels.testing import SimulatedCall
from voiceflow_channels.twilio_events import decode_message, parse_twilio_media, sequence_number


class MediaPayload(BaseModel):
    track: str | None = None
    chunk: str | None = None
    timestamp: str | None = None
    payload: str = Field(max_length=10_668)


class MediaEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: Literal["media"]
    sequenceNumber: str = Field(pattern=r"^[0-9]{1,20}$")
    streamSid: str
    media: MediaPayload


def ours(text: str) -> tuple[int | None, bytes | None]:
    d = decode_message(text)
    return sequence_number(d), parse_twilio_media(d)


def with_pydantic(text: str) -> tuple[int | None, bytes | None]:
    try:
        event = MediaEvent.model_validate_json(text)
        return int(event.sequenceNumber), base64.b64decode(event.media.payload, validate=True)
    except (ValidationError, ValueError):
        return None, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parsers", description=__doc__)
    parser.add_argument("--frames", type=int, default=100_000, help="frames per run")
    args = parser.parse_args(argv)
    call = SimulatedCall()
    call.start()
    frames = [call.media() for _ in range(1000)]
    assert [ours(f) for f in frames] == [with_pydantic(f) for f in frames]
    loops = max(args.frames // len(frames), 1)
    results = {}
    for name, parse in (("hand-written (ours)", ours), ("pydantic model", with_pydantic)):
        best = min(timeit.repeat(lambda p=parse: [p(f) for f in frames], number=loops, repeat=5))
        results[name] = best / (loops * len(frames)) * 1e6
        print(f"{name:22} {results[name]:6.2f} us per media frame", flush=True)
    ratio = results["pydantic model"] / results["hand-written (ours)"]
    print(f"pydantic / ours: {ratio:.2f}x (best of 5 runs, {loops * len(frames):,} frames each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
