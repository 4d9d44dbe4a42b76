"""What each simulated call plays, counted in media frames: how many for its seconds, and the
keys it presses and after which frame."""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..mulaw import FRAME_MS

FRAMES_PER_SECOND = 1000 // FRAME_MS
KEYS = "0123456789*#ABCD"
DEFAULT_WAIT_KEY = "1"


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
