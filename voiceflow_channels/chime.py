"""The thinking chime's audio: the built-in chime, and WAV files read and written as mu-law."""

from __future__ import annotations

import array
import functools
import math
import os
import struct
import sys
import wave
from typing import BinaryIO

from .mulaw import FRAME_BYTES, SAMPLE_RATE, linear_to_mulaw, mulaw_to_linear, pad_to_frames

MAX_SOUND_SECONDS = 10

_NEEDS = (
    "{} needs a WAV file of 8000 Hz mono mu-law or 16-bit PCM, "
    f"at most {MAX_SOUND_SECONDS} s long"
)
_TAG_PCM, _TAG_MULAW, _TAG_EXTENSIBLE = 0x0001, 0x0007, 0xFFFE
# WAVE_FORMAT_EXTENSIBLE's subformat GUID is the plain format tag followed by these 14 bytes.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_FORMAT_NAMES = {_TAG_PCM: "PCM", 3: "float", 6: "A-law", _TAG_MULAW: "mu-law"}
# Two bell-like notes a fifth apart (E5, then B5 as the first fades), inside the phone band.
_CHIME_NOTES = ((0.0, 659.26), (0.12, 987.77))
_CHIME_PARTIALS = ((1, 1.0), (2, 0.25), (3, 0.1))  # harmonic, relative level
_CHIME_FRAMES = 25  # 0.5 s
_CHIME_PEAK = 8000  # about -12 dBFS: heard over a quiet line, never startling
_FADE_IN_SECONDS = 0.005  # a sine starting at full level clicks
_FADE_OUT_SECONDS = 0.04  # so the last sample is exactly silence
_DECAY_SECONDS = 0.1


def _bell(t: float, freq: float) -> float:
    if t < 0:
        return 0.0
    envelope = min(t / _FADE_IN_SECONDS, 1.0) * math.exp(-t / _DECAY_SECONDS)
    # Higher partials die away faster, as on a struck bell.
    return envelope * sum(
        level * math.exp(-t * (k - 1) / _DECAY_SECONDS) * math.sin(2 * math.pi * freq * k * t)
        for k, level in _CHIME_PARTIALS
    )


@functools.cache
def synthesize_chime() -> bytes:
    """The built-in chime as mu-law: 0.5 s, whole 20 ms frames, soft, ending in silence."""
    count = _CHIME_FRAMES * FRAME_BYTES
    fade_out = _FADE_OUT_SECONDS * SAMPLE_RATE
    signal = [
        min((count - 1 - i) / fade_out, 1.0)
        * sum(_bell(i / SAMPLE_RATE - start, freq) for start, freq in _CHIME_NOTES)
        for i in range(count)
    ]
    scale = _CHIME_PEAK / max(map(abs, signal))
    return linear_to_mulaw(round(x * scale) for x in signal)


class SoundFileError(ValueError):
    """A sound file that cannot be played (as the chime, or as a simulated caller's voice); the
    message names the file and the fix."""


def load_wav(path: str | os.PathLike[str], needed_by: str = "VOICE_WAIT_SOUND_FILE") -> bytes:
    """Read an 8 kHz mono mu-law or 16-bit PCM WAV file as mu-law padded to whole frames; a
    refusal says `needed_by` (the setting or flag that names the file) needs such a file."""
    needs = _NEEDS.format(needed_by)
    try:
        with open(path, "rb") as stream:
            tag, data = _read_wav(stream, path)
    except OSError as exc:
        raise SoundFileError(f"{path} cannot be read ({exc.strerror or exc}); {needs}") from exc
    except SoundFileError as exc:
        raise SoundFileError(f"{exc}; {needs}") from None
    if tag == _TAG_MULAW:
        return pad_to_frames(data)
    samples = array.array("h")
    samples.frombytes(data)
    if sys.byteorder == "big":  # WAV samples are little-endian
        samples.byteswap()
    return pad_to_frames(linear_to_mulaw(samples))


def _read_wav(stream: BinaryIO, path: str | os.PathLike[str]) -> tuple[int, bytes]:
    """The format tag (mu-law or PCM) and the audio bytes, checked against what a sound file
    needs."""
    header = stream.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:] != b"WAVE":
        raise SoundFileError(f"{path} is not a WAV file (no RIFF/WAVE header)")
    audio_format: tuple[int, int] | None = None
    while len(chunk_header := stream.read(8)) == 8:
        chunk_id, size = struct.unpack("<4sI", chunk_header)
        if chunk_id == b"fmt ":
            fmt = stream.read(size + size % 2)  # chunks are padded to an even size
            if len(fmt) < size:
                raise SoundFileError(f"{path} is truncated inside its fmt chunk")
            audio_format = _check_format(fmt[:size], path)
        elif chunk_id == b"data":
            if audio_format is None:
                raise SoundFileError(f"{path} has no fmt chunk before its data")
            tag, width = audio_format
            seconds = size / width / SAMPLE_RATE
            if seconds > MAX_SOUND_SECONDS:
                raise SoundFileError(f"{path} holds {seconds:.1f} s of audio")
            data = stream.read(size)
            if len(data) < size:
                raise SoundFileError(f"{path} is truncated inside its data chunk")
            data = data[: size - size % width]  # a stray half sample is not audio
            if not data:
                raise SoundFileError(f"{path} has no audio (its data chunk is empty)")
            return tag, data
        else:  # LIST, fact, cue...: skipped unread
            stream.seek(size + size % 2, os.SEEK_CUR)
    raise SoundFileError(f"{path} has no data chunk")


def _check_format(fmt: bytes, path: str | os.PathLike[str]) -> tuple[int, int]:
    """The format tag and bytes per sample, when the fmt chunk is one load_wav can read."""
    if len(fmt) < 16:
        raise SoundFileError(f"{path} has a {len(fmt)}-byte fmt chunk (16 needed)")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _TAG_EXTENSIBLE and len(fmt) >= 40 and fmt[26:40] == _GUID_TAIL:
        tag = struct.unpack_from("<H", fmt, 24)[0]
    if rate == SAMPLE_RATE and channels == 1 and (tag, bits) in ((_TAG_MULAW, 8), (_TAG_PCM, 16)):
        return tag, bits // 8
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}-channel")
    name = _FORMAT_NAMES.get(tag, f"format 0x{tag:04X}")
    raise SoundFileError(f"{path} is {rate} Hz {layout} {bits}-bit {name}")


def write_wav(path: str | os.PathLike[str], mulaw: bytes) -> None:
    """Write mu-law audio as an 8 kHz mono 16-bit PCM WAV, which any player can open."""
    with open(path, "wb") as stream, wave.open(stream, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        # wave takes native-order samples and writes them little-endian.
        out.writeframes(mulaw_to_linear(mulaw).tobytes())
