"""RealtimeAssistant on a real phone line, against the fake Realtime server: keys given to the
model as the caller's words (by `#`, by the gap, interrupting the assistant at what was heard),
a silent caller checked on from when the assistant's turn was heard and at last hung up on, and
a long call wrapped up within its bound."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from tests.realtime_twilio import SILENCE, Twilio, ended, say
from tests.utils import metric, send_all
from voiceflow_channels import call_control
from voiceflow_channels.consumers import TwilioStreamConsumer
from voiceflow_channels.layer_messages import CallHangup
from voiceflow_channels.realtime import RealtimeAssistant, patience
from voiceflow_channels.realtime.patience import Action
from voiceflow_channels.realtime.phone_line import INSTRUCTIONS
from voiceflow_channels.testing import FakeCall
from voiceflow_channels.testing.fake_realtime import Reply, Script

pytestmark = pytest.mark.usefixtures("fresh_cache")


class Plain(RealtimeAssistant):
    instructions = "Answer."


class Greeter(RealtimeAssistant):
    greeting = "Hello, this is the shop."


class Keys(TwilioStreamConsumer):
    pressed: ClassVar[list[str]] = []

    async def on_dtmf(self, digit: str) -> None:
        self.pressed.append(digit)


async def test_keys_ended_by_hash_reach_the_model_as_one_entry_and_the_hook_sees_each(
    fake, summaries
):
    Keys.pressed = []
    fake.script = Script(speed=None, replies=(Reply(audio_ms=300),))
    twilio = Twilio(Plain, consumer=Keys)
    await twilio.start()
    await fake.wait_for(lambda: bool(fake.sessions), "the session")
    await send_all(twilio.ws, [twilio.call.dtmf(key) for key in "42#"])
    await twilio.play_until(ended)  # the model's answer to the keys, heard
    assert fake.user_texts == ["The caller pressed 4 2 #"]
    types = fake.client_event_types
    assert types.index("conversation.item.create") < types.index("response.create")
    assert fake.response_instructions == [None], "one response, asked for after the entry"
    assert Keys.pressed == ["4", "2", "#"], "the consumer's hook still sees every key"
    await twilio.hang_up()
    assert "dtmf=3" in summaries()[0] and "dtmf_to_model=1" in summaries()[0]


async def test_keys_without_a_hash_are_given_once_the_gap_passes(fake, settings):
    settings.VOICEFLOW_DTMF_GAP_MS = 50
    call = FakeCall()
    assistant = Plain()
    await assistant.attach(call)
    await fake.wait_for(lambda: bool(fake.sessions), "the session")
    await assistant.pressed("1")
    await assistant.pressed("2")
    await fake.wait_response_started(1)
    assert fake.user_texts == ["The caller pressed 1 2"]
    await assistant.detach()
    assert "dtmf_to_model=1" in assistant.summary()


async def test_keys_are_left_to_the_hook_when_not_given_to_the_model(fake, settings, summaries):
    settings.VOICEFLOW_DTMF_TO_MODEL = "off"
    Keys.pressed = []
    fake.script = Script(speed=None, replies=(Reply(audio_ms=300),))
    twilio = Twilio(Plain, consumer=Keys)
    await twilio.start()
    await fake.wait_for(lambda: bool(fake.sessions), "the session")
    await send_all(twilio.ws, [twilio.call.dtmf(key) for key in "7#"])
    await twilio.say(25)  # then the caller speaks: the model's answer is to that
    await twilio.pause()
    await twilio.play_until(ended)
    assert Keys.pressed == ["7", "#"]
    assert fake.user_texts == [] and fake.cancels == 0
    await twilio.hang_up()
    assert "dtmf_to_model=0" in summaries()[0]


async def test_a_key_interrupts_the_assistant_at_what_the_port_says_was_heard(fake):
    fake.script = Script(speed=None, replies=(Reply(audio_ms=2000),))
    call = FakeCall()
    assistant = Plain()
    await assistant.attach(call)
    await fake.wait_connections(1)
    say(assistant, 25)
    say(assistant, 30, SILENCE)
    await call.until(lambda: bool(call.ended))  # the answer, whole, still playing
    [key] = call.played
    call.heard[key] = 640  # the marks echoed so far
    await assistant.pressed("5")
    await fake.wait_for(lambda: bool(fake.truncates), "the truncate")
    [truncate] = fake.truncates
    assert call.clears == 1
    assert (truncate.item_id, truncate.audio_end_ms, truncate.error) == (key, 640, None)
    assert fake.cancels == 0, "the response was over: nothing to cancel"
    await assistant.detach()
    assert "barge_ins=1 truncates=1" in assistant.summary()


async def test_a_key_over_a_response_still_coming_cancels_it_and_the_entry_waits_for_its_end(
    fake,
):
    fake.script = Script(speed=2.0, late_deltas=2, replies=(Reply(audio_ms=4000),))
    twilio = Twilio(Greeter)
    await twilio.start()
    marks: list[str] = []

    def third_mark(message: dict) -> bool:
        if message["event"] == "mark":
            marks.append(message["mark"]["name"])
        return len(marks) == 3

    await twilio.play_until(third_mark)  # the greeting, 300 ms of it heard, more coming
    await send_all(twilio.ws, [twilio.call.dtmf("9"), twilio.call.dtmf("#")])
    await twilio.play_until(lambda m: m["event"] == "clear", echo=False)
    await fake.wait_for(lambda: bool(fake.truncates), "the truncate")
    [truncate] = fake.truncates
    heard_ms = len(twilio.audio(0, upto=marks[2])) // 8
    assert truncate.audio_end_ms == heard_ms > 0 and truncate.error is None
    assert fake.cancels == 1, "the model did not hear the key: it is told to stop"
    second = await fake.wait_response_started(2)
    assert fake.user_texts == ["The caller pressed 9 #"]
    [greeting, _] = fake.responses
    assert greeting.status == "cancelled" and second.number == 1
    refused = [
        e for e in fake.errors_sent if e["code"] == "conversation_already_has_active_response"
    ]
    assert refused == [], "the entry's response was asked for once the cancelled one ended"
    await twilio.hang_up()


async def test_a_silent_caller_is_checked_on_counting_from_when_the_turn_was_heard(fake, settings):
    settings.VOICEFLOW_IDLE_REPROMPT_MS = 200
    fake.script = Script(speed=None, replies=(Reply(audio_ms=300),))
    twilio = Twilio(Greeter)
    await twilio.start()
    await twilio.play_until(ended, echo=False)  # the greeting is all sent, none of it heard
    # The caller listens for longer than the idle time: sent is not heard, nothing is asked.
    await asyncio.sleep(0.5)
    assert len(fake.response_instructions) == 1
    loop = asyncio.get_running_loop()
    heard_at = loop.time()
    unechoed = [m["mark"]["name"] for m in twilio.sent if m["event"] == "mark"]
    await send_all(twilio.ws, [twilio.call.mark(name) for name in unechoed])
    await fake.wait_for(lambda: len(fake.response_instructions) == 2, "the check-in")
    assert loop.time() - heard_at >= 0.2
    assert fake.response_instructions[1] == INSTRUCTIONS[Action.CHECK_IN]
    await twilio.hang_up()


async def test_a_caller_talking_for_longer_than_the_idle_time_is_not_checked_on(fake, settings):
    settings.VOICEFLOW_IDLE_REPROMPT_MS = 200
    fake.script = Script(speed=None, replies=(Reply(audio_ms=300),))
    twilio = Twilio(Greeter)
    await twilio.start()
    await twilio.play_until(ended)  # the greeting heard: a silence would be timed from here
    await twilio.say(15)
    await fake.wait_speech_started(1)
    for _ in range(25):  # the caller talks on, in real time, past the idle time
        await twilio.say(1)
        await asyncio.sleep(0.02)
    assert len(fake.response_instructions) == 1, "no check-in while the caller speaks"
    await twilio.hang_up()


async def test_a_caller_silent_through_the_check_ins_hears_a_goodbye_then_the_call_ends(
    fake, settings, summaries
):
    settings.VOICEFLOW_IDLE_REPROMPT_MS = 100
    settings.VOICEFLOW_IDLE_REPROMPTS = 1
    fake.script = Script(speed=None, default_reply=Reply(audio_ms=240))
    endings = metric("voiceflow_assistant_endings_total", why="idle")
    twilio = Twilio(Greeter)
    await twilio.start()
    await twilio.play_until(lambda m: False)  # echoing every mark, to the close
    assert twilio.closed
    assert fake.response_instructions[1:] == [
        INSTRUCTIONS[Action.CHECK_IN],
        INSTRUCTIONS[Action.GOODBYE],
    ]
    assert twilio.events()[-1] == "mark", "the goodbye's end was heard before the close"
    assert await call_control.aread_end(twilio.call.call_sid) == CallHangup(
        type="voiceflow.call.hangup"
    )
    await twilio.ws.disconnect()
    [line] = summaries()
    assert line.startswith("voiceflow call ended (hangup)") and "idle_reprompts=1" in line
    assert metric("voiceflow_assistant_endings_total", why="idle") == endings + 1


async def test_a_caller_who_answers_a_check_in_is_checked_on_afresh(fake, settings):
    settings.VOICEFLOW_IDLE_REPROMPT_MS = 100
    settings.VOICEFLOW_IDLE_REPROMPTS = 1
    fake.script = Script(speed=None, default_reply=Reply(audio_ms=240))
    twilio = Twilio(Greeter)
    await twilio.start()
    await twilio.play_until(lambda m: False if len(fake.response_instructions) < 2 else ended(m))
    await twilio.say(25)  # the caller answers the check-in
    await twilio.pause()
    # The answer (the server VAD's response) plays and is heard; then the caller is silent.
    await twilio.play_until(lambda m: len(fake.response_instructions) == 3)
    assert len(fake.responses) == 4, "greeting, check-in, the answer, a check-in"
    assert fake.response_instructions[1:] == [INSTRUCTIONS[Action.CHECK_IN]] * 2, (
        "answered, the caller gets check-ins afresh, not the goodbye"
    )
    await twilio.hang_up()


async def test_a_long_call_is_wrapped_up_and_ends_once_the_goodbye_was_heard(
    fake, settings, summaries
):
    settings.VOICEFLOW_MAX_CALL_SECONDS = 1
    settings.VOICEFLOW_IDLE_REPROMPT_MS = 0
    fake.script = Script(speed=None, default_reply=Reply(audio_ms=240))
    endings = metric("voiceflow_assistant_endings_total", why="max_call")
    twilio = Twilio(Plain)
    await twilio.start()
    await twilio.play_until(lambda m: False)
    assert twilio.closed
    assert fake.response_instructions == [INSTRUCTIONS[Action.WRAP_UP]]
    assert "clear" not in twilio.events() and twilio.events()[-1] == "mark"
    assert await call_control.aread_end(twilio.call.call_sid) == CallHangup(
        type="voiceflow.call.hangup"
    )
    await twilio.ws.disconnect()
    assert summaries()[0].startswith("voiceflow call ended (hangup)")
    assert metric("voiceflow_assistant_endings_total", why="max_call") == endings + 1


async def test_a_wrap_up_whose_goodbye_runs_past_the_bound_is_cut_and_hung_up(
    fake, settings, monkeypatch
):
    monkeypatch.setattr(patience, "WRAP_UP_BOUND_S", 0.3)
    settings.VOICEFLOW_MAX_CALL_SECONDS = 1
    settings.VOICEFLOW_IDLE_REPROMPT_MS = 0
    fake.script = Script(speed=1.0, default_reply=Reply(audio_ms=20000))  # a goodbye too long
    cut = metric("voiceflow_assistant_endings_total", why="max_call_bound")
    twilio = Twilio(Plain)
    await twilio.start()
    await twilio.play_until(lambda m: False)
    assert twilio.closed
    assert "clear" in twilio.events()
    assert await call_control.aread_end(twilio.call.call_sid) == CallHangup(
        type="voiceflow.call.hangup"
    )
    await twilio.ws.disconnect()
    assert metric("voiceflow_assistant_endings_total", why="max_call_bound") == cut + 1
