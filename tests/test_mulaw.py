"""G.711 mu-law against audioop (the reference, gone in 3.13), and padding to whole frames."""

from __future__ import annotations

import array
import warnings

import pytest

from voiceflow_channels.mulaw import (
    BYTES_PER_MS,
    FRAME_BYTES,
    FRAME_MS,
    MULAW_SILENCE,
    frames_ms,
    linear_to_mulaw,
    mulaw_to_linear,
    pad_to_frames,
)


def audioop():
    """The reference codec: deprecated (gone in 3.13), so only the tests touch it, quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    return audioop


def test_a_frame_is_20_ms_of_8_khz_mulaw():
    assert (FRAME_MS, BYTES_PER_MS, FRAME_BYTES) == (20, 8, 160)


def test_encoder_matches_audioop_on_every_16_bit_sample():
    every = array.array("h", range(-32768, 32768))
    assert linear_to_mulaw(every) == audioop().lin2ulaw(every.tobytes(), 2)


def test_decoder_matches_audioop_on_every_code():
    every = bytes(range(256))
    decoded = mulaw_to_linear(every)
    assert decoded.typecode == "h"
    assert decoded.tobytes() == audioop().ulaw2lin(every, 2)


def test_zero_is_mulaw_silence():
    assert linear_to_mulaw([0]) == bytes([MULAW_SILENCE])
    assert list(mulaw_to_linear(bytes([MULAW_SILENCE]))) == [0]


@pytest.mark.parametrize(("size", "padded"), [(0, 0), (1, 160), (159, 160), (160, 160), (161, 320)])
def test_pad_to_frames(size, padded):
    audio = b"\x01" * size
    result = pad_to_frames(audio)
    assert len(result) == padded
    assert result[:size] == audio
    assert set(result[size:]) <= {MULAW_SILENCE}
    assert frames_ms(size) == padded // 8, "how long it plays, padded"
