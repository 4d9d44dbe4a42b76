"""G.711 mu-law at 8 kHz, as Twilio streams it: the codec, the frame sizes and padding.

Framework-free; the one home of these numbers (playback, the chime, the simulator and the demo
all take them from here).
"""

from __future__ import annotations

import array
from collections.abc import Iterable

SAMPLE_RATE = 8000
BYTES_PER_MS = SAMPLE_RATE // 1000  # one byte a sample
FRAME_MS = 20  # one Twilio media frame
FRAME_BYTES = FRAME_MS * BYTES_PER_MS
MULAW_SILENCE = 0xFF

# audioop's G.711 code works on sample >> 2 (14 bits): clip 8159, bias 0x84 >> 2, these segments.
_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _encode_14bit(value: int) -> int:
    """One sample the way the G.711 reference (and audioop) does it, on 16-bit input >> 2."""
    mask = 0x7F if value < 0 else 0xFF
    magnitude = min(abs(value), 8159) + (0x84 >> 2)
    segment = next((s for s, end in enumerate(_SEGMENT_ENDS) if magnitude <= end), None)
    if segment is None:  # past the top segment: the loudest code
        return 0x7F ^ mask
    return ((segment << 4) | ((magnitude >> (segment + 1)) & 0xF)) ^ mask


def _decode(code: int) -> int:
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - magnitude if code & 0x80 else magnitude - 0x84


# Indexed by sample >> 2 (-8192..8191): negative indexes land in the upper half, in order.
_ENCODE = bytes(_encode_14bit(v if v < 8192 else v - 16384) for v in range(16384))
_DECODE = tuple(_decode(code) for code in range(256))


def linear_to_mulaw(samples: Iterable[int]) -> bytes:
    """16-bit signed PCM samples to G.711 mu-law, bit-exact with audioop.lin2ulaw."""
    return bytes(_ENCODE[sample >> 2] for sample in samples)


def mulaw_to_linear(data: bytes) -> array.array[int]:
    """G.711 mu-law to 16-bit signed PCM samples, bit-exact with audioop.ulaw2lin."""
    return array.array("h", (_DECODE[code] for code in data))


def padding(size: int) -> bytes:
    """The silence that pads `size` bytes to whole 20 ms frames."""
    return bytes([MULAW_SILENCE]) * (-size % FRAME_BYTES)


def pad_to_frames(mulaw: bytes) -> bytes:
    """Pad with silence to whole 20 ms frames, so every frame sent is full."""
    return mulaw + padding(len(mulaw))


def frames_ms(size: int) -> int:
    """How long `size` bytes play once padded to whole 20 ms frames."""
    return -(-size // FRAME_BYTES) * FRAME_MS
