"""Slice C end to end: the example's demo assistant under a real daphne, the simulator as Twilio
(playing what it is sent in real time, echoing marks, honouring clears), in-memory layer."""

from __future__ import annotations

import array
import re
import wave

import pytest

from tests.servers import SERVERS, Daphne
from voiceflow_channels.testing import callsim

THRESHOLD_MS = 800
LEAD_MS, MARK_EVERY_MS, FRAME_MS = 300, 100, 20
ANSWER_MS = 2000  # example_project.demo.answer(): five notes of 0.4 s


@pytest.fixture(scope="module", params=SERVERS)
def demo(request):
    server = Daphne(
        request.param,
        VOZ_FEATURE_VOICE_FLOW_A="1",
        VOICE_WAIT_SOUND_TRIGGER_MS=str(THRESHOLD_MS),
        DEMO_WAIT_MS="2000",
    )
    yield server
    server.stop()


def recorded(path) -> array.array:
    """The 16-bit samples of a --record WAV: what the caller heard."""
    with wave.open(str(path)) as wav:
        return array.array("h", wav.readframes(wav.getnframes()))


def summary(server: Daphne, call_sid: str) -> dict[str, int]:
    [line] = server.wait_for(rf"call ended \(stop\) callSid={call_sid}")
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)\b", line)}


async def test_chime_at_the_threshold_then_the_answer_with_no_underrun(demo, tmp_path):
    # 1: think for 2 s (the chime from 0.8 s, again at 2.8 s if still waiting), then the answer.
    result = await callsim.run(
        demo.url, 2, 5.0, True, first=401, presses=((0.3, "1"),), record=tmp_path
    )
    assert not result.failed
    for call in result.calls:
        assert call.wait_to_chime_ms == pytest.approx(THRESHOLD_MS, abs=60)
        assert call.underruns == 0
        assert call.max_outstanding_ms <= LEAD_MS + MARK_EVERY_MS + FRAME_MS
        assert call.clears == 0, "the chime had ended before the wait did: nothing to clear"
        books = summary(demo, call.call_sid)
        assert books["chimes"] == 1 and books["chime_ms"] > 0
        assert books["played_ms"] == books["chime_ms"] + ANSWER_MS
        assert books["cleared_ms"] == 0 and books["refused_audio"] == 0
        # What the caller heard: silence until the chime, the chime, then the whole answer.
        heard = recorded(tmp_path / f"{call.call_sid}.wav")
        assert len(heard) == 5 * 8000
        assert max(map(abs, heard[: int(1.0 * 8000)])) < 100, "silence before the chime"
        assert max(map(abs, heard[int(1.15 * 8000) : int(1.3 * 8000)])) > 1000, "the chime"
        # The answer: from the wait's end (0.3 + 2 s) to 4.3 s, then silence.
        assert max(map(abs, heard[int(4.0 * 8000) : int(4.25 * 8000)])) > 1000
        assert max(map(abs, heard[int(4.45 * 8000) :])) < 100


async def test_a_wait_end_and_a_barge_in_each_clear_within_100_ms(demo, tmp_path):
    # 1 then * at 1.5 s: the wait ends (the chime is cleared), the answer starts; # at 2.5 s:
    # barge-in, the answer is cleared.
    presses = ((0.3, "1"), (1.5, "*"), (2.5, "#"))
    result = await callsim.run(demo.url, 2, 4.0, True, first=501, presses=presses, record=tmp_path)
    assert not result.failed
    for call in result.calls:
        assert call.wait_to_chime_ms == pytest.approx(THRESHOLD_MS, abs=60)
        assert len(call.clear_ms) == 2 and max(call.clear_ms) < 100
        assert call.clears == 2 and call.underruns == 0
        assert call.max_outstanding_ms <= LEAD_MS + MARK_EVERY_MS + FRAME_MS
        books = summary(demo, call.call_sid)
        answer_played = books["played_ms"] - books["chime_ms"]
        # The answer started at ~1.5 s and was cut at ~2.5 s: about a second of it was heard,
        # the rest cleared; played + cleared = everything queued (chime and answer).
        assert 700 <= answer_played <= 1100
        assert books["played_ms"] + books["cleared_ms"] == 500 + ANSWER_MS
        heard = recorded(tmp_path / f"{call.call_sid}.wav")
        after_cut = heard[int(2.65 * 8000) :]
        assert max(map(abs, after_cut)) < 100, "nothing of the answer after the clear"
