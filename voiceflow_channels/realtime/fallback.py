"""What the caller hears when the model fails, before the hang-up or transfer: never dead air.
VOICEFLOW_FALLBACK_SOUND_FILE (a WAV, as the chime's file) or a built-in short falling phrase."""

from __future__ import annotations

import functools
import math

from .. import conf
from ..chime import load_wav
from ..mulaw import SAMPLE_RATE, linear_to_mulaw

# Two soft falling notes (A4, then E4), 0.9 s: a "sorry" a caller tells from the chime.
_NOTES = ((0.0, 440.0), (0.45, 329.63))
_NOTE_SECONDS = 0.45
_PEAK = 6000


def fallback_audio() -> bytes:
    """The fallback as mu-law: the configured file (read once), else the built-in phrase."""
    path = conf.fallback_sound_file()
    return _load(path) if path else synthesize_fallback()


@functools.cache
def _load(path: str) -> bytes:
    return load_wav(path, needed_by="VOICEFLOW_FALLBACK_SOUND_FILE")


@functools.cache
def synthesize_fallback() -> bytes:
    samples = []
    count = int(_NOTE_SECONDS * SAMPLE_RATE)
    for _, freq in _NOTES:
        for i in range(count):
            envelope = min(i, count - i, 240) / 240  # 30 ms ramps: no clicks
            samples.append(round(_PEAK * envelope * math.sin(2 * math.pi * freq * i / SAMPLE_RATE)))
    return linear_to_mulaw(samples)
