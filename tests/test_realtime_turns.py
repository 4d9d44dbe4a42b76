"""Noisy lines and turn-taking: the assistant's input settings (noise_reduction, turn_detection,
interrupt_response) checked when its class is defined and carried by the session.update, and
barge-ins that were blips counted (false_barge_ins=), against the fake Realtime server."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from tests.realtime_twilio import Twilio
from tests.utils import metric
from voiceflow_channels.realtime import RealtimeAssistant
from voiceflow_channels.realtime.blips import FalseBargeIns
from voiceflow_channels.testing.fake_realtime import Reply, Script

pytestmark = pytest.mark.usefixtures("fresh_cache")


@pytest.mark.parametrize(
    ("attribute", "value", "said"),
    [
        (
            "noise_reduction",
            "loud",
            "Bad.noise_reduction = 'loud' is not allowed: use 'near_field'",
        ),
        ("interrupt_response", "yes", "Bad.interrupt_response = 'yes' is not allowed: use True"),
        ("turn_detection", "push_to_talk", "use 'server_vad' or 'semantic_vad'"),
        ("turn_detection", None, "Bad.turn_detection = None is not allowed"),
        (
            "turn_detection",
            {"type": "semantic_vad", "eagerness": "fast"},
            "turn_detection['eagerness'] = 'fast' is not allowed: Input should be 'low', "
            "'medium', 'high' or 'auto'",
        ),
        (
            "turn_detection",
            {"type": "server_vad", "threshold": "0.6"},
            "turn_detection['threshold'] = '0.6' is not allowed: Input should be a valid number",
        ),
        ("turn_detection", {"type": "server_vad", "threshold": 1.5}, "use 0.0 to 1.0"),
        ("turn_detection", {"type": "server_vad", "silence_duration_ms": -1}, "use ms >= 0"),
        (
            "turn_detection",
            {"type": "server_vad", "eagerness": "low"},
            "turn_detection['eagerness'] is not a field server_vad lets you set: use "
            "prefix_padding_ms, silence_duration_ms, threshold",
        ),
        (
            "turn_detection",
            {"type": "server_vad", "create_response": False},
            "turn_detection['create_response'] is not a field",
        ),
    ],
)
def test_a_bad_input_setting_is_refused_when_the_class_is_defined(attribute, value, said):
    with pytest.raises(TypeError) as refused:
        type("Bad", (RealtimeAssistant,), {attribute: value})
    assert said in str(refused.value)


class Speakerphone(RealtimeAssistant):
    noise_reduction = "far_field"
    turn_detection: ClassVar[Any] = {"type": "semantic_vad", "eagerness": "high"}
    interrupt_response = False


class Tuned(RealtimeAssistant):
    turn_detection: ClassVar[Any] = {"type": "server_vad", "threshold": 0.7}


@pytest.mark.parametrize(
    ("assistant", "noise", "detection"),
    [
        (
            RealtimeAssistant,
            {"type": "near_field"},
            {"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 300,
             "silence_duration_ms": 600, "interrupt_response": True, "create_response": True},
        ),
        (
            Tuned,
            {"type": "near_field"},
            {"type": "server_vad", "threshold": 0.7, "prefix_padding_ms": 300,
             "silence_duration_ms": 600, "interrupt_response": True, "create_response": True},
        ),
        (
            Speakerphone,
            {"type": "far_field"},
            {"type": "semantic_vad", "eagerness": "high", "interrupt_response": False,
             "create_response": True},
        ),
    ],
)  # fmt: skip
async def test_the_session_update_carries_the_input_settings(fake, assistant, noise, detection):
    twilio = Twilio(assistant)
    await twilio.start()
    await fake.wait_for(lambda: bool(fake.sessions), "the session.update")
    [session] = fake.sessions
    assert session["audio"]["input"]["noise_reduction"] == noise
    assert session["audio"]["input"]["turn_detection"] == detection
    await twilio.hang_up()


class Plain(RealtimeAssistant):
    instructions = "Answer."


class TalksOn(RealtimeAssistant):
    interrupt_response = False


async def heard_then_spoken_over(twilio: Twilio, fake, voice_frames: int) -> None:
    """A turn, its answer playing (three marks heard), then the caller's `voice_frames` over it
    and a pause that ends that speech."""
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    marks = 0

    def third_mark(message: dict) -> bool:
        nonlocal marks
        marks += message["event"] == "mark"
        return marks == 3

    await twilio.play_until(third_mark)
    await twilio.say(voice_frames)
    await twilio.pause(35)


@pytest.mark.parametrize(
    ("voice_frames", "transcripts", "blips"),
    [
        (5, ("", ""), 1),  # 100 ms, no words: a blip
        (5, ("", "Wait."), 0),  # short, but words: a real barge-in
        (30, ("", ""), 0),  # 600 ms: speech, whatever the transcript says
    ],
)
async def test_a_barge_in_that_was_a_blip_is_counted(
    fake, summaries, voice_frames, transcripts, blips
):
    fake.script = Script(speed=2.0, caller_transcripts=transcripts, replies=(Reply(audio_ms=4000),))
    before = metric("voiceflow_false_barge_ins_total")
    twilio = Twilio(Plain)
    await heard_then_spoken_over(twilio, fake, voice_frames)
    await twilio.play_until(lambda m: m["event"] == "clear", echo=False)
    await fake.wait_response_started(2)
    # The answer to the barge-in comes after the barge-in's transcript: all of it was read.
    await twilio.play_until(lambda m: m["event"] == "media")
    await twilio.hang_up()
    [line] = summaries()
    assert "barge_ins=1 truncates=1" in line and f"false_barge_ins={blips}" in line
    assert metric("voiceflow_false_barge_ins_total") == before + blips


async def test_without_interrupt_response_the_caller_does_not_stop_the_assistant(fake, summaries):
    fake.script = Script(speed=2.0, replies=(Reply(audio_ms=2000),))
    twilio = Twilio(TalksOn)
    await heard_then_spoken_over(twilio, fake, 25)
    await fake.wait_response_done(1)
    await twilio.hang_up()
    assert "clear" not in twilio.events()
    assert not fake.truncates and fake.responses[0].status == "completed"
    assert "barge_ins=0" in summaries()[0]


def test_without_transcripts_the_length_alone_decides():
    blips = FalseBargeIns(400, padding_ms=300, silence_ms=600, transcribed=False)
    blips.barged_in("item_1", 1000)
    blips.speech_stopped("item_1", 1000 + 300 + 399 + 600)
    blips.barged_in("item_2", 5000)
    blips.speech_stopped("item_2", 5000 + 300 + 400 + 600)
    blips.speech_stopped("item_3", 9000)  # a turn that stopped nothing
    assert blips.count == 1


class Misprepared(RealtimeAssistant):
    async def prepare(self, call: Any) -> None:
        self.noise_reduction = "loud"


async def test_a_prepare_that_sets_a_bad_value_is_logged_and_the_class_s_apply(fake, caplog):
    before = metric("voiceflow_internal_errors_total", where="prepare")
    twilio = Twilio(Misprepared)
    await twilio.start()
    await fake.wait_for(lambda: bool(fake.sessions), "the session.update")
    assert fake.sessions[0]["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert metric("voiceflow_internal_errors_total", where="prepare") == before + 1
    assert "noise_reduction = 'loud' is not allowed" in caplog.text
    await twilio.hang_up()
