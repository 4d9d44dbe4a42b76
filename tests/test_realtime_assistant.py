"""RealtimeAssistant against the fake Realtime server (the SDK on the wire, GA events built from
its own models), with the real router and Twilio played in process: the greeting, a turn,
barge-in, tools with the chime, end_call, and every failure falling back, never dead air."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import ClassVar

import pytest

from tests.realtime_twilio import Twilio, ended
from tests.utils import metric
from voiceflow_channels import call_control
from voiceflow_channels.call_port import CallInfo
from voiceflow_channels.layer_messages import CallHangup, CallTransfer
from voiceflow_channels.mulaw import BYTES_PER_MS
from voiceflow_channels.realtime import RealtimeAssistant
from voiceflow_channels.realtime import link as link_module
from voiceflow_channels.realtime.fallback import synthesize_fallback
from voiceflow_channels.testing.fake_realtime import FunctionCall, Reply, Script
from voiceflow_channels.testing.fake_realtime.script import tone

pytestmark = pytest.mark.usefixtures("fresh_cache")


class Greeter(RealtimeAssistant):
    instructions = "Be brief."
    greeting = "Hello, this is the shop."


async def test_the_session_is_ga_shaped_and_the_greeting_plays_whole(fake, summaries):
    fake.script = Script(speed=None, replies=(Reply(audio_ms=1010),))
    twilio = Twilio(Greeter)
    await twilio.start()
    await twilio.play_until(ended)
    [session] = fake.sessions
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["turn_detection"]["create_response"] is True
    assert session["instructions"] == "Be brief."
    assert fake.response_creates == 1, "the edge asks for the greeting only"
    heard = twilio.audio()
    assert heard[: 1010 * BYTES_PER_MS] == tone(0, 1010 * BYTES_PER_MS), "no silence inside"
    assert heard[1010 * BYTES_PER_MS :] == bytes([0xFF]) * 80, "the end padded to a frame"
    await twilio.hang_up()
    assert "turns=1 barge_ins=0" in summaries()[0]


class Plain(RealtimeAssistant):
    instructions = "Answer."


async def test_a_turn_the_callers_audio_goes_up_and_the_answer_comes_back(fake, summaries):
    fake.script = Script(speed=None, replies=(Reply(audio_ms=600),))
    twilio = Twilio(Plain)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)  # half a second of voice
    await twilio.pause()  # then silence past silence_duration_ms
    await twilio.play_until(ended)
    assert twilio.audio()[: 600 * BYTES_PER_MS] == tone(0, 600 * BYTES_PER_MS)
    [connection] = fake.connections
    assert connection.appended_ms == 55 * 20, "every frame went up, the silence too"
    assert fake.response_creates == 0, "the server's VAD made the response"
    await twilio.hang_up()
    [line] = summaries()
    assert "turns=1" in line and "response_ms_p50=" in line and "response_ms_p50=-" not in line


async def test_a_barge_in_clears_truncates_at_what_was_heard_and_drops_late_audio(fake, summaries):
    fake.script = Script(speed=2.0, late_deltas=3, replies=(Reply(audio_ms=4000),))
    twilio = Twilio(Plain)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    marks: list[str] = []

    def third_mark(message: dict) -> bool:
        if message["event"] == "mark":
            marks.append(message["mark"]["name"])
        return len(marks) == 3

    await twilio.play_until(third_mark)  # 300 ms heard: three marks echoed
    await twilio.say(10)  # the caller speaks over it
    await twilio.play_until(lambda m: m["event"] == "clear", echo=False)
    await fake.wait_for(lambda: bool(fake.truncates), "the truncate")
    [truncate] = fake.truncates
    assert truncate.error is None
    heard_ms = len(twilio.audio(0, upto=marks[2])) // BYTES_PER_MS
    assert truncate.audio_end_ms == heard_ms > 0, "what the caller heard: its echoed marks"
    assert truncate.audio_end_ms <= truncate.generated_ms
    [response] = fake.responses
    await fake.wait_for(lambda: response.late_deltas_sent == 3, "the late deltas")
    before = len(twilio.sent)
    await twilio.pause()
    await twilio.hang_up()
    assert "media" not in twilio.events()[before:], "no late audio played after the clear"
    [line] = summaries()
    assert "late_audio=3" in line and "barge_ins=1 truncates=1" in line


async def test_a_connection_refused_falls_back_to_the_fallback_audio_then_hangs_up(
    fake, summaries, caplog
):
    fake.script = Script(refuse_keys=frozenset({"sk-test"}))
    failures = metric("voiceflow_model_failures_total", kind="refused")
    twilio = Twilio(Plain)
    await twilio.start()
    await twilio.play_until(lambda m: False)  # to the close
    assert twilio.closed
    assert twilio.audio() == synthesize_fallback(), "the caller heard the fallback, whole"
    assert await call_control.aread_end(twilio.call.call_sid) == CallHangup(
        type="voiceflow.call.hangup"
    )
    assert metric("voiceflow_model_failures_total", kind="refused") == failures + 1
    assert "the handshake was refused with 401" in caplog.text
    assert "sk-test" not in caplog.text, "never the key"
    await twilio.ws.disconnect()
    assert summaries()[0].startswith("voiceflow call ended (hangup)")


async def test_a_model_that_never_answers_the_handshake_is_retried_then_falls_back(
    fake, monkeypatch, settings
):
    settings.VOICEFLOW_MODEL_RETRIES = 1
    fake.script = Script(hang_handshake=True)
    monkeypatch.setattr(link_module, "CONNECT_TIMEOUT_S", 0.5)
    failures = metric("voiceflow_model_failures_total", kind="connect")
    twilio = Twilio(Plain)
    await twilio.start()
    await twilio.play_until(lambda m: False)
    assert twilio.audio() == synthesize_fallback()
    assert metric("voiceflow_model_failures_total", kind="connect") == failures + 2, "one retry"
    await twilio.ws.disconnect()


async def test_the_session_cap_reconnects_once_with_the_same_instructions(fake, summaries):
    fake.script = Script(speed=None, session_cap_s=0.3)
    twilio = Twilio(Plain)
    await twilio.start()
    await fake.wait_connections(2)
    await fake.wait_for(lambda: len(fake.sessions) == 2, "the second session.update")
    assert fake.sessions[0]["instructions"] == fake.sessions[1]["instructions"] == "Answer."
    await twilio.hang_up()
    assert not twilio.audio(), "no fallback: the call went on"
    assert "voiceflow call ended (stop)" in summaries()[0]


async def check_order_status(order_id: str) -> str:
    """Look up an order.

    Args:
        order_id: The order number.
    """
    await RELEASE.wait()
    return f"Order {order_id} ships today."


RELEASE = asyncio.Event()


class Shop(RealtimeAssistant):
    instructions = "Sell."
    tools = (check_order_status,)
    end_call = True


async def test_a_tool_runs_while_the_chime_plays_and_the_answer_clears_it(
    fake, settings, summaries
):
    global RELEASE
    RELEASE = asyncio.Event()
    settings.VOICE_WAIT_SOUND_TRIGGER_MS = "50"
    call = FunctionCall("check_order_status", '{"order_id": "42"}')
    fake.script = Script(
        speed=None,
        replies=(Reply(audio_ms=0, function_calls=(call,)), Reply(audio_ms=400)),
    )
    twilio = Twilio(Shop)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    # The chime, past 50 ms; Twilio holds it (no echo): it still plays when the answer comes.
    await twilio.play_until(lambda m: m["event"] == "media", echo=False)
    assert not fake.function_outputs, "the tool is still running"
    RELEASE.set()
    await twilio.play_until(lambda m: m["event"] == "clear", echo=False)
    assert await fake.wait_response_started(2)
    start = len(twilio.sent)
    await twilio.play_until(ended)
    [output] = fake.function_outputs
    assert output.output == "Order 42 ships today."
    assert fake.response_creates == 1, "one response.create after the tool's output"
    assert twilio.audio(start).startswith(tone(0, 400 * BYTES_PER_MS)), "then the answer"
    await twilio.hang_up()
    assert "tools=1 tool_failures=0" in summaries()[0]


async def broken(order_id: str) -> str:
    """Always fails.

    Args:
        order_id: The order number.
    """
    raise ConnectionError("the order backend is down")


class Broken(RealtimeAssistant):
    tools = (broken,)


async def test_a_tool_that_raises_gives_the_model_an_error_to_apologise_with(
    fake, summaries, caplog
):
    call = FunctionCall("broken", '{"order_id": "7"}')
    fake.script = Script(speed=None, replies=(Reply(audio_ms=0, function_calls=(call,)),))
    twilio = Twilio(Broken)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    await fake.wait_for(lambda: bool(fake.function_outputs), "the tool's output")
    [output] = fake.function_outputs
    assert "failed" in output.output and "Apologise" in output.output
    await fake.wait_response_done(2)  # the model answers the failure
    await twilio.hang_up()
    assert "tools=1 tool_failures=1" in summaries()[0]
    assert "the order backend is down" in caplog.text, "the traceback is logged"


async def test_end_call_hangs_up_once_the_goodbye_was_heard(fake, summaries):
    goodbye = Reply(audio_ms=500, function_calls=(FunctionCall("end_call"),))
    fake.script = Script(speed=None, replies=(goodbye,))
    twilio = Twilio(Shop)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    await twilio.play_until(lambda m: False)  # echoing every mark, to the close
    assert twilio.closed
    assert twilio.audio()[: 500 * BYTES_PER_MS] == tone(0, 500 * BYTES_PER_MS)
    assert twilio.events()[-1] == "mark", "the last thing before the close: the goodbye's end"
    assert await call_control.aread_end(twilio.call.call_sid) == CallHangup(
        type="voiceflow.call.hangup"
    )
    await twilio.ws.disconnect()
    assert summaries()[0].startswith("voiceflow call ended (hangup)")


async def stuck(order_id: str) -> str:
    """Never answers.

    Args:
        order_id: The order number.
    """
    await asyncio.Event().wait()
    return "never"


class Stuck(RealtimeAssistant):
    tools = (stuck,)


async def test_a_tool_past_its_timeout_gives_the_model_an_error_and_the_call_goes_on(
    fake, settings, summaries
):
    settings.VOICEFLOW_TOOL_TIMEOUT_S = 1
    call = FunctionCall("stuck", '{"order_id": "7"}')
    fake.script = Script(speed=None, replies=(Reply(audio_ms=0, function_calls=(call,)),))
    twilio = Twilio(Stuck)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    await fake.wait_for(lambda: bool(fake.function_outputs), "the tool's output")
    assert "TimeoutError after 1 s" in fake.function_outputs[0].output
    await fake.wait_response_done(2)
    await twilio.hang_up()
    assert "tools=1 tool_failures=1" in summaries()[0]


@pytest.mark.parametrize(
    ("script", "kind", "said"),
    [
        (Script(speed=None, fail_after_s=0.2), "session_error", "server_error"),
        (
            Script(speed=None, rate_limited_responses=frozenset({0}), replies=(Reply(),)),
            "rate_limit",
            "rate_limit_exceeded",
        ),
    ],
)
async def test_a_session_the_model_keeps_ending_falls_back_once_its_retries_are_spent(
    fake, caplog, script, kind, said
):
    fake.script = script
    failures = metric("voiceflow_model_failures_total", kind=kind)
    twilio = Twilio(Greeter)
    await twilio.start()
    await twilio.play_until(lambda m: False)
    assert twilio.audio().endswith(synthesize_fallback()), "never dead air: the fallback"
    # A server error is worth VOICEFLOW_MODEL_RETRIES (2) new sessions; a rate limit is not.
    tries = 3 if kind == "session_error" else 1
    assert metric("voiceflow_model_failures_total", kind=kind) == failures + tries
    assert len(fake.connections) == tries
    assert f"({kind})" in caplog.text and said in caplog.text
    await twilio.ws.disconnect()


class Desk(RealtimeAssistant):
    transfers: ClassVar = {"sales": "+15557654321", "nowhere": "+19005550100"}  # 2nd: premium
    fallback = "sales"
    heard: ClassVar[list[tuple[str, str]]] = []

    async def on_transcript(self, role: str, text: str) -> None:
        self.heard.append((role, text))


@pytest.fixture
def allowlist(settings):
    settings.VOICEFLOW_TRANSFER_ALLOWLIST = ["+15557654321"]
    Desk.heard = []


async def test_transfer_call_to_a_named_destination_transfers_after_its_line(fake, allowlist):
    line = Reply(
        audio_ms=300, function_calls=(FunctionCall("transfer_call", '{"destination": "sales"}'),)
    )
    fake.script = Script(speed=None, replies=(line,))
    twilio = Twilio(Desk)
    await twilio.start()
    await fake.wait_for(lambda: bool(fake.sessions), "the session")
    tools = {tool["name"]: tool for tool in fake.sessions[0]["tools"]}
    assert tools["transfer_call"]["parameters"]["properties"]["destination"]["enum"] == [
        "nowhere",
        "sales",
    ]
    await twilio.say(25)
    await twilio.pause()
    await twilio.play_until(lambda m: False)
    assert twilio.closed and twilio.audio()[: 300 * BYTES_PER_MS] == tone(0, 300 * BYTES_PER_MS)
    assert await call_control.aread_end(twilio.call.call_sid) == CallTransfer(
        type="voiceflow.call.transfer", to="+15557654321"
    )
    await twilio.ws.disconnect()


async def test_transfer_call_off_the_allowlist_is_refused_and_the_model_told(fake, allowlist):
    refused = Reply(
        audio_ms=0, function_calls=(FunctionCall("transfer_call", '{"destination": "nowhere"}'),)
    )
    fake.script = Script(speed=None, replies=(refused, Reply(audio_ms=200)))
    twilio = Twilio(Desk)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    await fake.wait_response_done(2)
    [output] = fake.function_outputs
    assert (
        "The transfer failed" in output.output
        and "not on VOICEFLOW_TRANSFER_ALLOWLIST" in output.output
    )
    assert "9005550100" not in output.output, "masked, even for the model"
    await twilio.hang_up()
    assert await call_control.aread_end(twilio.call.call_sid) is None, "the call went on"


async def test_a_failure_falls_back_to_a_transfer_when_the_assistant_names_one(fake, allowlist):
    fake.script = Script(refuse_keys=frozenset({"sk-test"}))
    twilio = Twilio(Desk)
    await twilio.start()
    await twilio.play_until(lambda m: False)
    assert twilio.audio() == synthesize_fallback()
    assert await call_control.aread_end(twilio.call.call_sid) == CallTransfer(
        type="voiceflow.call.transfer", to="+15557654321"
    )
    await twilio.ws.disconnect()


async def test_transcripts_reach_the_hook_and_never_the_log_without_debug(fake, allowlist, caplog):
    fake.script = Script(
        speed=None, replies=(Reply(audio_ms=100, transcript="Hello from the model"),)
    )
    twilio = Twilio(Desk)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    await twilio.play_until(ended)
    await twilio.hang_up()
    assert Desk.heard == [("user", "Caller turn 1."), ("assistant", "Hello from the model")]
    assert "Hello from the model" not in caplog.text
    assert "Caller turn 1." not in caplog.text


async def test_a_call_that_ends_normally_counts_no_model_failure_and_frees_its_assistant(fake):
    fake.script = Script(speed=None, replies=(Reply(audio_ms=200),))
    closed = metric("voiceflow_model_failures_total", kind="closed")
    refs: list[weakref.ref[RealtimeAssistant]] = []

    class Kept(Greeter):
        async def prepare(self, call: CallInfo) -> None:
            refs.append(weakref.ref(self))

    twilio = Twilio(Kept)
    await twilio.start()
    await twilio.play_until(ended)
    await fake.wait_response_done(1)
    gc.collect()
    gc.disable()
    try:
        await twilio.hang_up()
        del twilio
        await asyncio.sleep(0)  # the session's tasks end
        [ref] = refs
        assert ref() is None, "no cycle keeps an ended call's assistant alive"
    finally:
        gc.enable()
    assert metric("voiceflow_model_failures_total", kind="closed") == closed
