"""The simulated caller's voice (`--talk`): a voice-like signal, made once, that a server's voice
activity detector, tuned for speech rather than tones, should hear as someone talking."""

from __future__ import annotations

import functools
import math
import random

from ..mulaw import FRAME_BYTES, SAMPLE_RATE, linear_to_mulaw

# Seeded: every run, and every call of a run, says the same thing.
_SEED = 1877
_SYLLABLES = 12  # the loop's length: about 3 s, played over again by a longer window
_SYLLABLE_SECONDS = (0.18, 0.32)  # about four a second
_RAMP = 0.3  # of a syllable, rising from and falling back to nothing
# A low male voice, 130-170 Hz: an intonation swing over the loop and a fall within each syllable.
_PITCH_HZ, _INTONATION_HZ, _SYLLABLE_FALL_HZ = 150.0, 15.0, 10.0
_JITTER = 0.01  # of each glottal period, as a real voice wavers
# Rosenberg's glottal pulse: the glottis opens over this much of a period and closes over this.
_OPENING, _CLOSING = 0.4, 0.16
# The first three formants (Hz) of the vowels /a/ /i/ /u/ /e/ /o/ /ae/, and their bandwidths.
_VOWELS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (570, 840, 2410),
    (660, 1720, 2410),
)
_BANDWIDTHS = (80, 100, 160)
_BREATH = 0.003  # aspiration noise, relative to the pulse
# A hiss like an s or an f opens each syllable, quieter than the vowel: a detector trained on
# speech waits for consonants, and hears vowels alone as a hum.
_CONSONANT_SECONDS = 0.05
_CONSONANT = 0.05
_RMS = 32768 * 10 ** (-20 / 20)  # -20 dBFS: conversational speech on a phone line


def _pulse(phase: float) -> float:
    """The glottal flow over one period (0 <= phase < 1): opening, closing, closed."""
    if phase < _OPENING:
        return 0.5 * (1 - math.cos(math.pi * phase / _OPENING))
    if phase < _OPENING + _CLOSING:
        return math.cos(math.pi / 2 * (phase - _OPENING) / _CLOSING)
    return 0.0


def _resonator(formant: float, bandwidth: float) -> tuple[float, float, float]:
    """Klatt's two-pole resonator, y = a x + b y1 + c y2, unity gain at 0 Hz."""
    radius = math.exp(-math.pi * bandwidth / SAMPLE_RATE)
    b = 2 * radius * math.cos(2 * math.pi * formant / SAMPLE_RATE)
    c = -radius * radius
    return 1 - b - c, b, c


def _syllables(rng: random.Random) -> list[tuple[int, int, float]]:
    """(samples, vowel, loudness) of each syllable; together a whole number of media frames."""
    lengths = [round(rng.uniform(*_SYLLABLE_SECONDS) * SAMPLE_RATE) for _ in range(_SYLLABLES)]
    lengths[-1] += -sum(lengths) % FRAME_BYTES
    return [(n, rng.randrange(len(_VOWELS)), rng.uniform(0.6, 1.0)) for n in lengths]


@functools.cache
def synthetic_voice() -> bytes:
    """About 3 s of voice-like mu-law, whole 20 ms frames at -20 dBFS RMS: syllables about four a
    second, each a hiss and then a vowel, a glottal pulse train with a wandering pitch through
    the vowel's formants; starting and ending in silence, so that it loops without a click."""
    rng = random.Random(_SEED)
    syllables = _syllables(rng)
    total = sum(n for n, _, _ in syllables)
    signal: list[float] = []
    phase = flow = noise = hiss = 0.0
    period_scale = 1.0
    hiss_count = round(_CONSONANT_SECONDS * SAMPLE_RATE)
    state = [0.0] * 6  # each resonator's last two outputs
    for count, vowel, loudness in syllables:
        filters = [_resonator(f, bw) for f, bw in zip(_VOWELS[vowel], _BANDWIDTHS, strict=True)]
        for i in range(count):
            x = i / count
            envelope = loudness * math.sin(math.pi / 2 * min(x / _RAMP, (1 - x) / _RAMP, 1)) ** 2
            pitch = (
                _PITCH_HZ
                + _INTONATION_HZ * math.sin(2 * math.pi * len(signal) / total)
                + _SYLLABLE_FALL_HZ * (0.5 - x)
            )
            phase += pitch * period_scale / SAMPLE_RATE
            if phase >= 1:
                phase -= 1
                period_scale = 1 + rng.uniform(-_JITTER, _JITTER)
            # The flow's slope, not the flow: the lips radiate its derivative.
            previous, flow = flow, _pulse(phase)
            sample = envelope * (flow - previous + rng.gauss(0, _BREATH))
            for k, (a, b, c) in enumerate(filters):
                sample = a * sample + b * state[2 * k] + c * state[2 * k + 1]
                state[2 * k + 1], state[2 * k] = state[2 * k], sample
            if i < hiss_count:  # white noise, its lows taken out
                previous, noise = noise, rng.gauss(0, 1)
                hiss = noise - previous + 0.5 * hiss
                sample += _CONSONANT * math.sin(math.pi * i / hiss_count) * hiss
            signal.append(sample)
    scale = _RMS / math.sqrt(sum(s * s for s in signal) / len(signal))
    return linear_to_mulaw(max(-32768, min(32767, round(s * scale))) for s in signal)
