"""Model failures in their real shapes, against the fake Realtime server: a response that ends
`failed` (asked again once, then a model failure: a new session with the conversation, or the
fallback), one that ends `incomplete` (counted, the call goes on), a message that is not an
event, and a bug of ours; never dead air, never a task dying unobserved."""

from __future__ import annotations

import asyncio
import gc

import pytest

from tests.realtime_twilio import Twilio, ended
from tests.utils import metric
from voiceflow_channels import call_control
from voiceflow_channels.layer_messages import CallHangup
from voiceflow_channels.mulaw import BYTES_PER_MS
from voiceflow_channels.realtime import RealtimeAssistant
from voiceflow_channels.realtime import assistant as assistant_module
from voiceflow_channels.realtime.fallback import synthesize_fallback
from voiceflow_channels.tasks import spawn
from voiceflow_channels.testing.fake_realtime import Reply, Script
from voiceflow_channels.testing.fake_realtime.script import tone

pytestmark = pytest.mark.usefixtures("fresh_cache")


@pytest.fixture(autouse=True)
def quick_retry(monkeypatch):
    monkeypatch.setattr(assistant_module, "RESPONSE_RETRY_S", 0.01)


class Greeter(RealtimeAssistant):
    greeting = "Hello, this is the shop."


class Plain(RealtimeAssistant):
    instructions = "Answer."


def media(message: dict) -> bool:
    return message["event"] == "media"


async def test_a_failed_response_is_asked_for_again_and_the_call_goes_on(fake, caplog):
    fake.script = Script(speed=None, replies=(Reply(failed="server_error"), Reply(audio_ms=300)))
    failed = metric("voiceflow_model_responses_failed_total", code="server_error")
    twilio = Twilio(Greeter)
    await twilio.start()
    await twilio.play_until(ended)
    assert twilio.audio()[: 300 * BYTES_PER_MS] == tone(0, 300 * BYTES_PER_MS), "the greeting"
    assert fake.response_creates == 2, "the greeting, then the same once more"
    assert [r.status for r in fake.responses] == ["failed", "completed"]
    assert metric("voiceflow_model_responses_failed_total", code="server_error") == failed + 1
    assert len(fake.connections) == 1, "no new session for one failure"
    assert "server_error" in caplog.text and "asking again" in caplog.text
    await twilio.hang_up()


async def test_two_failed_responses_reopen_the_session_with_the_conversation_and_answer(fake):
    failing = Reply(failed="server_error")
    fake.script = Script(
        speed=None, replies=(failing, failing, Reply(audio_ms=200)), fail_connections=frozenset({1})
    )
    failures = metric("voiceflow_model_failures_total", kind="response_failed")
    twilio = Twilio(Plain)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    await twilio.play_until(media)
    assert metric("voiceflow_model_failures_total", kind="response_failed") == failures + 1
    second = fake.connections[1]
    said = [item for item in second.created_items if item.get("role") == "user"]
    assert said and said[0]["content"][0]["text"] == "Caller turn 1.", "the history replayed"
    assert second.response_creates == 1, "the answer the caller is owed, asked for at once"
    await twilio.play_until(ended)
    assert twilio.audio().startswith(tone(0, 1200 * BYTES_PER_MS)), "then it is heard"
    await twilio.hang_up()


async def test_a_rate_limited_response_twice_falls_back_never_dead_air(fake):
    limited = Reply(failed="rate_limit_exceeded")
    fake.script = Script(speed=None, replies=(limited, limited))
    failed = metric("voiceflow_model_responses_failed_total", code="rate_limit_exceeded")
    rate_limits = metric("voiceflow_model_failures_total", kind="rate_limit")
    twilio = Twilio(Greeter)
    await twilio.start()
    await twilio.play_until(lambda m: False)  # to the close
    assert twilio.audio() == synthesize_fallback(), "the caller heard the fallback, whole"
    assert await call_control.aread_end(twilio.call.call_sid) == CallHangup(
        type="voiceflow.call.hangup"
    )
    assert metric("voiceflow_model_responses_failed_total", code="rate_limit_exceeded") == (
        failed + 2
    )
    assert metric("voiceflow_model_failures_total", kind="rate_limit") == rate_limits + 1
    assert len(fake.connections) == 1, "a rate limit is not worth a new session"
    await twilio.ws.disconnect()


async def test_an_incomplete_response_is_counted_and_the_call_goes_on(fake, caplog, summaries):
    cut = Reply(audio_ms=300, incomplete="content_filter")
    fake.script = Script(speed=None, replies=(cut, Reply(audio_ms=200)))
    incomplete = metric("voiceflow_model_responses_incomplete_total", reason="content_filter")
    twilio = Twilio(Greeter)
    await twilio.start()
    await twilio.play_until(ended)
    assert metric("voiceflow_model_responses_incomplete_total", reason="content_filter") == (
        incomplete + 1
    )
    assert "content_filter" in caplog.text
    start = len(twilio.sent)
    await twilio.say(25)
    await twilio.pause()
    await twilio.play_until(ended)
    assert twilio.audio(start).startswith(tone(0, 200 * BYTES_PER_MS)), "the next turn answered"
    assert len(fake.connections) == 1 and fake.response_creates == 1, "no retry, no new session"
    await twilio.hang_up()
    assert summaries()[0].startswith("voiceflow call ended (stop)")


NOT_JSON = '{"type": "response.output_audio.delta", "delta": '


@pytest.mark.parametrize("message", [NOT_JSON, '["not", "an", "event"]', '{"no": "type"}'])
async def test_a_message_that_is_not_an_event_is_a_model_failure_with_the_fallback(
    fake, settings, caplog, message
):
    settings.VOICEFLOW_MODEL_RETRIES = 0
    fake.script = Script(speed=None, malformed_after_s=0.2, malformed_message=message)
    failures = metric("voiceflow_model_failures_total", kind="bad_message")
    twilio = Twilio(Plain)
    await twilio.start()
    await twilio.play_until(lambda m: False)  # to the close
    assert fake.connections[0].malformed_sent == 1
    assert twilio.audio() == synthesize_fallback(), "not silence for the rest of the call"
    assert metric("voiceflow_model_failures_total", kind="bad_message") == failures + 1
    assert "(bad_message): a message that is not" in caplog.text
    await twilio.ws.disconnect()
    gc.collect()
    assert "never retrieved" not in caplog.text


async def test_a_message_that_is_not_json_reopens_the_session_when_retries_are_left(fake):
    fake.script = Script(speed=None, malformed_after_s=0.2, fail_connections=frozenset({1}))
    twilio = Twilio(Plain)
    await twilio.start()
    await fake.wait_connections(2)
    await fake.wait_for(lambda: len(fake.sessions) == 2, "the second session.update")
    await twilio.hang_up()
    assert not twilio.audio(), "no fallback: the call went on"


async def test_a_bug_of_ours_that_ends_the_session_is_logged_counted_and_falls_back(
    fake, settings, monkeypatch, caplog
):
    settings.VOICEFLOW_MODEL_RETRIES = 0

    async def broken(self: RealtimeAssistant) -> None:
        raise RuntimeError("a bug in the greeting")

    monkeypatch.setattr(RealtimeAssistant, "_greet_when_ready", broken)
    failures = metric("voiceflow_model_failures_total", kind="internal")
    twilio = Twilio(Greeter)
    await twilio.start()
    await twilio.play_until(lambda m: False)
    assert twilio.audio() == synthesize_fallback()
    assert metric("voiceflow_model_failures_total", kind="internal") == failures + 1
    assert "Traceback" in caplog.text and "a bug in the greeting" in caplog.text
    await twilio.ws.disconnect()


async def test_a_spawned_task_that_raises_is_logged_and_counted_as_it_ends(caplog):
    before = metric("voiceflow_internal_errors_total", where="test_task")

    async def boom() -> None:
        raise ValueError("boom")

    task = spawn(boom(), "test_task")
    await asyncio.wait([task])
    await asyncio.sleep(0)  # the done callback
    assert metric("voiceflow_internal_errors_total", where="test_task") == before + 1
    assert "voiceflow task test_task raised" in caplog.text and "boom" in caplog.text
    del task
    gc.collect()
    assert "never retrieved" not in caplog.text
