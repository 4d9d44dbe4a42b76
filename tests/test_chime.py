"""The chime's audio: the built-in chime, every WAV loader refusal, WAV writing."""

from __future__ import annotations

import array
import struct
import sys
import wave

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceflow_channels.chime import (
    MAX_SOUND_SECONDS,
    SoundFileError,
    load_wav,
    synthesize_chime,
    write_wav,
)
from voiceflow_channels.mulaw import (
    FRAME_BYTES,
    SAMPLE_RATE,
    linear_to_mulaw,
    mulaw_to_linear,
    pad_to_frames,
)

# The subformat GUID of WAVE_FORMAT_EXTENSIBLE, after its leading 2-byte format tag.
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def fmt(tag: int = 1, channels: int = 1, rate: int = SAMPLE_RATE, bits: int = 16) -> bytes:
    block = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)


def extensible(subformat: int, bits: int = 16) -> bytes:
    extension = struct.pack("<HHIH", 22, bits, 0x4, subformat) + GUID_TAIL
    return fmt(0xFFFE, bits=bits) + extension


def riff(*chunks: tuple[bytes, bytes]) -> bytes:
    body = b"".join(
        name + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)
        for name, data in chunks
    )
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def pcm_bytes(samples: array.array) -> bytes:
    little = array.array("h", samples)
    if sys.byteorder == "big":
        little.byteswap()
    return little.tobytes()


SAMPLES = array.array("h", [0, 1, -1, 100, -100, 8000, -8000, 32767, -32768] * 37)


def test_chime_is_a_soft_half_second_in_whole_frames():
    chime = synthesize_chime()
    assert len(chime) % FRAME_BYTES == 0
    assert 0.4 <= len(chime) / SAMPLE_RATE <= 0.6
    samples = mulaw_to_linear(chime)
    peak = max(map(abs, samples))
    assert 4000 < peak <= 8200, "audible, and about -12 dBFS at most"


def test_chime_starts_and_ends_at_silence():
    samples = mulaw_to_linear(synthesize_chime())
    assert samples[0] == 0
    assert max(map(abs, samples[:8])) < 1000, "a fade-in, not a click"
    assert max(map(abs, samples[-80:])) < 100, "the last 10 ms have died away"
    assert samples[-1] == 0


def test_chime_is_deterministic_and_computed_once():
    assert synthesize_chime() is synthesize_chime()
    assert synthesize_chime.__wrapped__() == synthesize_chime()


def test_loads_mulaw_as_is_padded_to_frames(tmp_path):
    audio = bytes(range(256)) * 3
    path = tmp_path / "chime.wav"
    path.write_bytes(riff((b"fmt ", fmt(7, bits=8)), (b"data", audio)))
    assert load_wav(path) == pad_to_frames(audio)


def test_loads_16_bit_pcm_as_its_mulaw(tmp_path):
    path = tmp_path / "chime.wav"
    path.write_bytes(riff((b"fmt ", fmt()), (b"data", pcm_bytes(SAMPLES))))
    assert load_wav(str(path)) == pad_to_frames(linear_to_mulaw(SAMPLES))


@pytest.mark.parametrize(
    ("fmt_chunk", "data", "expected"),
    [
        (extensible(1), pcm_bytes(SAMPLES), linear_to_mulaw(SAMPLES)),
        (extensible(7, bits=8), b"\x10\x20\x30", b"\x10\x20\x30"),
    ],
    ids=["pcm", "mulaw"],
)
def test_loads_wave_format_extensible(tmp_path, fmt_chunk, data, expected):
    path = tmp_path / "chime.wav"
    path.write_bytes(riff((b"fmt ", fmt_chunk), (b"data", data)))
    assert load_wav(path) == pad_to_frames(expected)


def test_skips_unknown_chunks_and_their_pad_byte(tmp_path):
    path = tmp_path / "chime.wav"
    chunks = (
        (b"LIST", b"odd"),
        (b"fmt ", fmt()),
        (b"fact", b"\0\0\0\0"),
        (b"data", pcm_bytes(SAMPLES)),
    )
    path.write_bytes(riff(*chunks))
    assert load_wav(path) == pad_to_frames(linear_to_mulaw(SAMPLES))


MULAW_FMT = (b"fmt ", fmt(7, bits=8))
TOO_LONG = (b"data", b"\xff" * (SAMPLE_RATE * (MAX_SOUND_SECONDS + 2)))


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (riff((b"fmt ", fmt(channels=2)), (b"data", b"\0" * 8)), "8000 Hz stereo 16-bit PCM"),
        (riff((b"fmt ", fmt(rate=16000)), (b"data", b"\0" * 8)), "16000 Hz mono 16-bit PCM"),
        (riff((b"fmt ", fmt(bits=8)), (b"data", b"\0" * 8)), "8000 Hz mono 8-bit PCM"),
        (riff((b"fmt ", fmt(bits=24)), (b"data", b"\0" * 9)), "8000 Hz mono 24-bit PCM"),
        (riff((b"fmt ", fmt(3, bits=32)), (b"data", b"\0" * 8)), "8000 Hz mono 32-bit float"),
        (riff((b"fmt ", fmt(6, bits=8)), (b"data", b"\0" * 8)), "8000 Hz mono 8-bit A-law"),
        (riff((b"fmt ", fmt(0xFFFE)), (b"data", b"\0" * 8)), "8000 Hz mono 16-bit format 0xFFFE"),
        (riff((b"fmt ", fmt()[:14]), (b"data", b"\0" * 8)), "14-byte fmt chunk"),
        (b"ID3\x04\0\0\0\0\0\0\0\0 an mp3", "not a WAV file"),
        (b"", "not a WAV file"),
        (riff(MULAW_FMT, (b"data", b"\xff" * 100))[:-10], "truncated inside its data chunk"),
        (riff(MULAW_FMT)[:-4], "truncated inside its fmt chunk"),
        (riff(MULAW_FMT, (b"LIST", b"info")), "no data chunk"),
        (riff((b"data", b"\xff" * 100), MULAW_FMT), "no fmt chunk before its data"),
        (riff(MULAW_FMT, (b"data", b"")), "no audio"),
        (riff((b"fmt ", fmt()), (b"data", b"\0")), "no audio"),
        (riff(MULAW_FMT, TOO_LONG), f"holds {MAX_SOUND_SECONDS + 2}.0 s of audio"),
    ],
    ids=[
        "stereo",
        "16khz",
        "8-bit-pcm",
        "24-bit",
        "float",
        "a-law",
        "unknown-extensible",
        "short-fmt",
        "not-riff",
        "empty-file",
        "truncated-data",
        "truncated-fmt",
        "no-data",
        "data-before-fmt",
        "empty-data",
        "half-a-sample",
        "too-long",
    ],
)
def test_refusals_name_the_file_what_was_found_and_what_is_needed(tmp_path, content, found):
    path = tmp_path / "sound.wav"
    path.write_bytes(content)
    with pytest.raises(SoundFileError) as caught:
        load_wav(path)
    message = str(caught.value)
    assert str(path) in message
    assert found in message
    assert "needs a WAV file of 8000 Hz mono mu-law or 16-bit PCM" in message


def test_missing_file_is_a_sound_file_error(tmp_path):
    path = tmp_path / "missing.wav"
    with pytest.raises(SoundFileError, match="cannot be read") as caught:
        load_wav(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


# Random bytes seldom get past the header, so also try them after a header and after a fmt chunk.
ANY_FILE_CONTENT = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda tail: b"RIFF\0\0\0\0WAVE" + tail),
    st.builds(
        lambda fmt_chunk, tail: riff((b"fmt ", fmt_chunk)) + tail,
        st.sampled_from([fmt(), fmt(7, bits=8), fmt(channels=2)]),
        st.binary(max_size=300),
    ),
)


@given(content=ANY_FILE_CONTENT)
def test_any_bytes_give_framed_mulaw_or_a_sound_file_error(tmp_path_factory, content):
    path = tmp_path_factory.getbasetemp() / "arbitrary.wav"
    path.write_bytes(content)
    try:
        mulaw = load_wav(path)
    except SoundFileError as error:
        assert str(path) in str(error)
    else:
        assert mulaw and len(mulaw) % FRAME_BYTES == 0


def test_write_wav_is_8khz_mono_16_bit_pcm_of_the_mulaw(tmp_path):
    mulaw = bytes(range(256)) + synthesize_chime()
    path = tmp_path / "recording.wav"
    write_wav(path, mulaw)
    with wave.open(str(path), "rb") as recording:
        assert recording.getframerate() == SAMPLE_RATE
        assert recording.getnchannels() == 1
        assert recording.getsampwidth() == 2
        frames = recording.readframes(recording.getnframes())
    assert array.array("h", frames) == mulaw_to_linear(mulaw)
    # mu-law has two zeros (0x7F and 0xFF); PCM has one, which loads back as 0xFF.
    assert load_wav(path) == pad_to_frames(mulaw.replace(b"\x7f", b"\xff"))
