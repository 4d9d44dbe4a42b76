"""The simulated caller talks (`--talk`, `--talk-file`): a voice-like signal instead of silence in
given windows of its audio, for a server's barge-in to hear."""

from __future__ import annotations

import base64
import json
import math

import pytest

from voiceflow_channels.mulaw import FRAME_BYTES, MULAW_SILENCE, mulaw_to_linear
from voiceflow_channels.testing import SimulatedCall
from voiceflow_channels.testing.script import parse_talk, talk_frames
from voiceflow_channels.testing.talk import synthetic_voice

SILENT_FRAME = bytes([MULAW_SILENCE]) * FRAME_BYTES
# What a plain energy detector calls speech: a 20 ms frame's level over -40 dBFS.
SPEECH_DBFS = -40


def dbfs(mulaw: bytes) -> float:
    samples = mulaw_to_linear(mulaw)
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    return 20 * math.log10(rms / 32768) if rms else -math.inf


def frames_of(mulaw: bytes) -> list[bytes]:
    return [mulaw[i : i + FRAME_BYTES] for i in range(0, len(mulaw), FRAME_BYTES)]


def payloads(texts) -> list[bytes]:
    """The audio of each media message, in order."""
    events = (json.loads(text) if isinstance(text, str) else text for text in texts)
    return [base64.b64decode(e["media"]["payload"]) for e in events if e["event"] == "media"]


def test_a_talk_window_is_seconds_and_an_optional_duration():
    assert parse_talk("2", 1.5) == (2.0, 1.5)
    assert parse_talk("0:0.5", 1.5) == (0.0, 0.5)
    assert parse_talk("2.25:3", 0.4) == (2.25, 3.0)


def test_each_window_plays_the_audio_from_its_start_over_again_if_longer():
    chunks = [bytes([n]) * FRAME_BYTES for n in (1, 2, 3)]
    audio = b"".join(chunks)
    talking = talk_frames([(1.0, 0.1), (0.1, 0.06)], audio, 2.0, 100)
    assert talking == {
        6: chunks[0],
        7: chunks[1],
        8: chunks[2],
        **dict(zip(range(51, 56), [*chunks, *chunks[:2]], strict=True)),
    }
    # Touching windows do not overlap, and one may end with the call (within rounding).
    assert sorted(talk_frames([(0, 0.1), (0.1, 0.2)], audio, 0.3, 15)) == list(range(1, 16))
    assert max(talk_frames([(0.2, 0.09)], audio, 0.29, 14)) == 14
    # Audio that is not whole frames is padded with silence.
    assert talk_frames([(0, 0.04)], b"\x01" * 170, 1, 50) == {
        1: chunks[0],
        2: b"\x01" * 10 + SILENT_FRAME[10:],
    }


def test_the_talk_frames_carry_the_voice_and_every_other_frame_silence():
    voice = synthetic_voice()
    talking = talk_frames([(0.2, 0.3), (0.6, 0.1)], voice, 1.0, 50)
    call = SimulatedCall(3)
    texts = list(call.whole_call(50, mark_every=20, presses={12: "1"}, talk=talking))
    heard = payloads(texts)
    assert len(heard) == 50
    for frame, audio in enumerate(heard, 1):
        if 11 <= frame <= 25:
            assert audio == voice[(frame - 11) * FRAME_BYTES : (frame - 10) * FRAME_BYTES]
        elif 31 <= frame <= 35:
            assert audio == voice[(frame - 31) * FRAME_BYTES : (frame - 30) * FRAME_BYTES]
        else:
            assert audio == SILENT_FRAME, f"frame {frame} should be silent"
    # Talking frames are numbered, chunked and timed as every other.
    events = [json.loads(text) for text in texts]
    assert [int(e["sequenceNumber"]) for e in events[1:]] == list(range(1, len(events)))
    media = [e["media"] for e in events if e["event"] == "media"]
    assert [(int(m["chunk"]), int(m["timestamp"])) for m in media] == [
        (n, n * 20) for n in range(1, 51)
    ]


def test_the_synthetic_voice_is_speech_level_to_an_energy_detector_and_loops_quietly():
    voice = synthetic_voice()
    levels = [dbfs(frame) for frame in frames_of(voice)]
    assert len(voice) % FRAME_BYTES == 0 and 2.5 <= len(voice) / 8000 <= 3.5
    assert dbfs(voice) == pytest.approx(-20, abs=1)
    # Speech for an energy detector with a 100 ms hangover: no five frames in a row below.
    loud = [level > SPEECH_DBFS for level in levels]
    assert sum(loud) / len(loud) > 0.9
    assert "00000" not in "".join("1" if x else "0" for x in loud)
    # It starts and ends quietly, so that looping it does not click.
    assert levels[0] < levels[2] and levels[-1] < levels[-3]
    assert max(map(abs, mulaw_to_linear(voice))) < 32000, "it never clips"


def pitch_hz(samples: list[int]) -> float:
    """The strongest period between 2.5 and 12.5 ms (80-400 Hz), by autocorrelation."""
    lags = range(20, 101)
    best = max(
        lags, key=lambda lag: sum(samples[i] * samples[i + lag] for i in range(len(samples) - lag))
    )
    return 8000 / best


def test_the_synthetic_voice_is_voiced_at_a_wandering_pitch_in_syllables():
    samples = list(mulaw_to_linear(synthetic_voice()))
    # The loudest 40 ms of each 250 ms, about one a syllable: voiced at a voice's pitch, which
    # moves (a tone's would not).
    blocks = [samples[i : i + 320] for i in range(0, len(samples) - 320, 320)]
    loudest = [
        max(blocks[i : i + 6], key=lambda block: sum(s * s for s in block))
        for i in range(0, len(blocks), 6)
    ]
    pitches = [pitch_hz(block) for block in loudest]
    assert all(100 <= p <= 200 for p in pitches), pitches
    assert max(pitches) - min(pitches) >= 10, pitches
    # Syllables: the level dips between them about four times a second.
    levels = [dbfs(frame) for frame in frames_of(synthetic_voice())]
    dips = sum(
        1
        for before, level, after in zip(levels, levels[1:], levels[2:], strict=False)
        if level < before and level <= after and level < max(levels) - 12
    )
    assert 3 <= dips / (len(samples) / 8000) <= 6


def test_the_synthetic_voice_is_the_same_every_time():
    assert synthetic_voice.__wrapped__() == synthetic_voice()
    assert synthetic_voice() is synthetic_voice(), "made once a process"
