"""The example's assistant on a real daphne and a real uvicorn, the fake Realtime server behind
it and the simulator as Twilio: the greeting plays, the caller talks over it, the assistant
clears at once and truncates the greeting at what the caller heard, drops the late audio, and
answers the caller's turn."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import pytest

from tests.servers import SERVERS, Server
from voiceflow_channels.mulaw import BYTES_PER_MS, MULAW_SILENCE, linear_to_mulaw
from voiceflow_channels.playback import DEFAULT_LEAD_MS
from voiceflow_channels.testing import callsim
from voiceflow_channels.testing.fake_realtime import FakeRealtime, Reply, Script

pytestmark = pytest.mark.parametrize("server_name", SERVERS)

TALK_AT_S, TALK_S = 2.0, 1.0


def heard(path: Path) -> bytes:
    """What the caller heard, as mu-law (the recording holds its 16-bit PCM)."""
    with wave.open(str(path)) as wav:
        return linear_to_mulaw(memoryview(wav.readframes(wav.getnframes())).cast("h"))


def sounding(audio: bytes, gap_ms: int = 40) -> list[tuple[int, int]]:
    """The stretches of `audio` that are not silence, as (start, end) ms; a stretch ends at a
    silence of `gap_ms` (the fake's voice crosses zero, which is silence for a sample)."""
    gap = gap_ms * BYTES_PER_MS
    stretches: list[tuple[int, int]] = []
    start = last = None
    for i, byte in enumerate(audio):
        if byte == MULAW_SILENCE:
            continue
        if start is None or i - last > gap:
            if start is not None:
                stretches.append((start, last + 1))
            start = i
        last = i
    if start is not None:
        stretches.append((start, last + 1))
    return [(a // BYTES_PER_MS, b // BYTES_PER_MS) for a, b in stretches]


async def test_a_barge_in_on_a_real_server_truncates_at_what_the_caller_heard(
    server_name, tmp_path
):
    greeting = Reply(audio_ms=4000, transcript="Welcome to the shop, how can I help?")
    # In real time: the greeting is still being generated when the caller talks over it.
    script = Script(speed=1.0, late_deltas=2, replies=(greeting, Reply(audio_ms=800)))
    async with FakeRealtime(script=script) as fake:
        server = Server(
            server_name,
            VOZ_FEATURE_VOICE_FLOW_A="1",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=fake.base_url,
        )
        try:
            result = await callsim.run(
                server.url, 1, 6.0, True, talk=[(TALK_AT_S, TALK_S)], record=tmp_path
            )
            [call] = result.calls
            assert call.ok, call.error
            [line] = await asyncio.to_thread(server.wait_for, r"call ended \(stop\) callSid=CA")
        finally:
            server.stop()
    [truncate] = fake.truncates
    assert truncate.error is None, "a truncate the model accepts"
    assert call.clears == 1, "one clear, at the barge-in"
    [first, *rest] = sounding(heard(call.recording))
    caller_heard = first[1] - first[0]
    # By mark echoes, never past what the caller heard; behind it by at most the audio Twilio
    # held unconfirmed when the clear came.
    assert 0 < truncate.audio_end_ms <= caller_heard
    assert caller_heard - truncate.audio_end_ms <= DEFAULT_LEAD_MS
    assert first[1] < (TALK_AT_S + 0.3) * 1000, "cut within the VAD's start and the clear"
    assert rest, "then the answer to the caller's turn"
    assert rest[0][0] > (TALK_AT_S + TALK_S) * 1000, "nothing of the greeting after the clear"
    assert "late_audio=2" in line and "barge_ins=1 truncates=1" in line
    assert "turns=2" in line
