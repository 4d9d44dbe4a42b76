"""What each simulated call plays, counted in media frames: how many for its seconds, the keys it
presses and after which frame, and the frames it talks in."""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..mulaw import FRAME_BYTES, FRAME_MS, pad_to_frames

FRAMES_PER_SECOND = 1000 // FRAME_MS
KEYS = "0123456789*#ABCD"
DEFAULT_WAIT_KEY = "1"
DEFAULT_TALK_SECONDS = 1.5


def frames_for(seconds: float) -> int:
    """Media frames in `seconds` of audio, at least one."""
    return max(1, round(seconds * FRAMES_PER_SECOND))


def parse_press(text: str) -> tuple[float, str]:
    """A keypress written `KEY@SECONDS` (`1@0.5`, `#@4`) as (seconds, key)."""
    key, at, when = text.partition("@")
    try:
        seconds = float(when)
    except ValueError:
        seconds = math.nan
    if not (at and is_key(key) and math.isfinite(seconds)):
        raise ValueError(
            f"bad keypress {text!r}: write KEY@SECONDS, KEY one of 0-9 * # A-D, e.g. 1@0.5"
        )
    return seconds, key


def press_frames(
    presses: Iterable[tuple[float, str]], seconds: float, frames: int
) -> dict[int, str]:
    """Media frame number (from 1) -> the keys pressed right after it, in the order pressed:
    a press at t seconds goes after the frame sent at t."""
    after: dict[int, str] = {}
    for at, key in sorted(presses, key=lambda press: press[0]):
        if not is_key(key):
            raise ValueError(f"bad keypress {key!r}@{at:g}: the key must be one of 0-9 * # A-D")
        if not 0 <= at <= seconds:
            raise ValueError(
                f"bad keypress {key}@{at:g}: the time must be within the call, 0 to {seconds:g} s"
            )
        frame = min(round(at * FRAMES_PER_SECOND), frames - 1) + 1
        after[frame] = after.get(frame, "") + key
    return after


def is_key(key: str) -> bool:
    """Whether `key` is one a call can press: 0-9 * # A-D."""
    return len(key) == 1 and key in KEYS


def parse_talk(text: str, default_seconds: float) -> tuple[float, float]:
    """A talk window written `SECONDS[:DURATION]` (`2`, `2:1.5`) as (start, duration) in
    seconds; without a DURATION, `default_seconds`."""
    start, colon, duration = text.partition(":")
    try:
        window = (float(start), float(duration) if colon else default_seconds)
    except ValueError:
        window = (math.nan, math.nan)
    if not all(map(math.isfinite, window)):
        raise ValueError(
            f"bad --talk {text!r}: write SECONDS[:DURATION], e.g. 2 or 2:1.5 (talk from 2 s "
            "into the call, for 1.5 s)"
        )
    return window


def talk_frames(
    talk: Iterable[tuple[float, float]], audio: bytes, seconds: float, frames: int
) -> dict[int, bytes]:
    """Media frame number (from 1) -> the 160 bytes of `audio` it carries instead of silence.
    Each (start, duration) window plays `audio` from its start, over again if the window is
    longer, from the frame sent at `start`; windows must lie within the call and not overlap."""
    audio = pad_to_frames(audio)
    chunks = [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]
    carried: dict[int, bytes] = {}
    last = 0  # the last frame of the window before
    before = ""
    for start, duration in sorted(talk):
        window = f"{start:g}:{duration:g}"
        if not (math.isfinite(start) and math.isfinite(duration) and start >= 0 and duration > 0):
            raise ValueError(f"bad --talk {window}: SECONDS must be >= 0 and DURATION > 0")
        if not chunks:
            raise ValueError(f"bad --talk {window}: there is no audio to talk with")
        # Half a frame over is rounding: the window then ends with the call.
        if start + duration > seconds + 0.5 / FRAMES_PER_SECOND:
            raise ValueError(
                f"bad --talk {window}: it ends at {start + duration:g} s, after the call's "
                f"{seconds:g} s; shorten it or make the call longer (--seconds)"
            )
        first = min(round(start * FRAMES_PER_SECOND), frames - 1) + 1
        count = min(max(1, round(duration * FRAMES_PER_SECOND)), frames - first + 1)
        if first <= last:
            raise ValueError(
                f"bad --talk {window}: it overlaps --talk {before}; give windows that do not"
            )
        carried.update((first + k, chunks[k % len(chunks)]) for k in range(count))
        last, before = first + count - 1, window
    return carried
