"""Websocket frames built ahead of sending: a call's messages as masked text frames, in batches
for a flat-out run, and written straight to the socket's transport."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import websockets

# websockets.frames holds the C apply_mask when its speedups are built (websockets.utils has
# only the pure-Python one); it does not declare it exported.
from websockets.frames import Frame, Opcode, apply_mask  # type: ignore[attr-defined]
from websockets.protocol import State

from .simulated_call import Step

# A text frame's header from the client, for 126 bytes to 64 KiB: FIN and opcode, mask bit and the
# 16-bit length marker, the length.
_TEXT_HEAD = struct.Struct("!BBH")


def text_frame(text: str) -> bytes:
    """`text` as a masked websocket text frame. Those of 126 bytes to 64 KiB (every media frame)
    are built here at half the cost of Frame.serialize(), which checks, runs extensions and
    writes to a BytesIO: a real-time call sends 50 a second."""
    data = text.encode()
    if not 126 <= len(data) < 1 << 16:
        return Frame(Opcode.TEXT, data).serialize(mask=True)
    key = os.urandom(4)
    return _TEXT_HEAD.pack(0x81, 0xFE, len(data)) + key + apply_mask(data, key)


def write_frames(ws: websockets.ClientConnection, frames: bytes) -> None:
    """Write ready-made frames now, in order with everything sent before, as `send()` does."""
    if frames and ws.state is State.OPEN:
        ws.transport.write(frames)


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive messages of one call: all but the last as masked websocket frames, ready to
    write at once; the last as text, to go through `send()`. `presses` counts the keypresses in
    it; `ends` says it carries the call's stop."""

    head: bytes
    last: str
    messages: int
    media: int
    presses: int
    ends: bool


def batches(steps: Iterable[Step], size: int) -> Iterator[Batch]:
    """A call's script (`SimulatedCall.steps`) in batches of up to `size` messages."""
    chunk: list[Step] = []
    for step in steps:
        chunk.append(step)
        if len(chunk) == size:
            yield _batch(chunk)
            chunk = []
    if chunk:
        yield _batch(chunk)


def _batch(chunk: list[Step]) -> Batch:
    texts = [step.render() for step in chunk]
    kinds = [step.kind for step in chunk]
    head = b"".join(text_frame(text) for text in texts[:-1])
    return Batch(
        head,
        texts[-1],
        len(chunk),
        kinds.count("media"),
        kinds.count("press"),
        kinds[-1] == "stop",
    )
