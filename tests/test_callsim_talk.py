"""The simulated caller talks (`--talk`, `--talk-file`): a voice-like signal instead of silence in
given windows of its audio, for a server's barge-in to hear."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import wave
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.servers import SERVERS, Server
from tests.test_callsim_playout import twilio_counterpart
from voiceflow_channels.mulaw import FRAME_BYTES, MULAW_SILENCE, linear_to_mulaw, mulaw_to_linear
from voiceflow_channels.testing import SimulatedCall, callsim
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


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--talk", "x"], "bad --talk 'x': write SECONDS\\[:DURATION\\], e.g. 2 or 2:1.5"),
        (["--talk", "2:"], "bad --talk '2:'"),
        (["--talk", ":1"], "bad --talk ':1'"),
        (["--talk", "1:1:1"], "bad --talk '1:1:1'"),
        (["--talk", "nan"], "bad --talk 'nan'"),
        (["--talk", "1:inf"], "bad --talk '1:inf'"),
        (["--talk", "-1"], "bad --talk -1:1.5: SECONDS must be >= 0 and DURATION > 0"),
        (["--talk", "1:0"], "bad --talk 1:0: SECONDS must be >= 0 and DURATION > 0"),
        (["--talk", "4"], "bad --talk 4:1.5: it ends at 5.5 s, after the call's 5 s"),
        (
            ["--talk", "1:2", "--talk", "2.5", "--seconds", "8"],
            "bad --talk 2.5:1.5: it overlaps --talk 1:2; give windows that do not",
        ),
        (["--talk-file", "voice.wav"], "--talk-file needs --talk SECONDS\\[:DURATION\\]"),
    ],
)
def test_a_bad_talk_is_a_command_error_that_names_it(options, message):
    with pytest.raises(CommandError, match=message):
        call_command("voiceflow_callsim", *options)


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


async def test_run_refuses_talk_with_no_audio_before_connecting():
    with pytest.raises(ValueError, match="bad --talk 0:1: there is no audio to talk with"):
        await callsim.run("ws://127.0.0.1:9/x", 1, 2, True, talk=[(0, 1)], talk_audio=b"")


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


def write_pcm_wav(path: Path, samples: list[int]) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))


async def test_the_command_talks_with_a_wav_file_from_its_start_in_each_window(tmp_path):
    # 0.1 s of a rising ramp: every frame of it differs from the others.
    samples = [(i * 37) % 20000 - 10000 for i in range(800)]
    path = tmp_path / "hello.wav"
    write_pcm_wav(path, samples)
    recording = frames_of(linear_to_mulaw(samples))
    out = StringIO()
    async with twilio_counterpart() as server:
        await asyncio.to_thread(
            call_command,
            "voiceflow_callsim",
            *("--url", server.url, "--seconds", "0.6", "--flat-out"),
            *("--talk-file", str(path), "--talk", "0.1", "--talk", "0.3:0.16"),
            stdout=out,
            stderr=StringIO(),
        )
    heard = payloads(d for _, d in server.got)
    assert len(heard) == 30
    # Without a DURATION, the file's length (5 frames); a longer window plays it over again.
    assert heard[5:10] == recording
    assert heard[15:23] == recording + recording[:3]
    assert heard[:5] + heard[10:15] + heard[23:] == [SILENT_FRAME] * 17
    assert f"each call talked ({path}) at 0.1-0.2 s, 0.3-0.46 s" in out.getvalue()


@pytest.mark.parametrize(
    ("content", "found"),
    [(b"not a wav", "is not a WAV file"), (None, "cannot be read")],
)
def test_a_bad_talk_file_is_a_command_error_that_names_the_flag(tmp_path, content, found):
    path = tmp_path / "voice.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CommandError) as caught:
        call_command("voiceflow_callsim", "--talk-file", str(path), "--talk", "1")
    message = str(caught.value)
    assert message.startswith(f"{path} {found}")
    assert "; --talk-file needs a WAV file of 8000 Hz mono mu-law or 16-bit PCM" in message


@pytest.fixture(params=SERVERS)
def server(request):
    running = Server(request.param, VOZ_FEATURE_VOICE_FLOW_A="1")
    try:
        yield running
    finally:
        running.stop()


def test_talking_calls_are_closed_by_a_real_server_after_their_stop(server):
    out = StringIO()
    call_command(
        "voiceflow_callsim",
        *("--url", server.url, "--calls", "3", "--seconds", "2.6", "--first", "401"),
        *("--talk", "0.5", "--talk", "2:0.6"),
        stdout=out,
        stderr=StringIO(),
    )
    assert "3 calls (realtime)" in out.getvalue()
    assert "each call talked (the synthetic voice) at 0.5-2 s, 2-2.6 s" in out.getvalue()
    assert "every call was closed by the server after its stop" in out.getvalue()
    # 130 frames, a mark at 2 s, and no keypress: a talking call presses only the keys it is told.
    server.wait_for(
        r"call ended \(stop\) callSid=CA0+19[123] .* frames=130 bytes=20800 gaps=0 "
        r"out_of_order=0 marks=1 dtmf=0 ",
        count=3,
    )
