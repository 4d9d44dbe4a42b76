"""The conversation outlives its process, on real servers: the example's assistant on daphne, the
fake Realtime server behind it, one real Redis, and the simulator as Twilio. A call talks, is
cut into by the caller, and is then moved to a uvicorn process, by a drain (handed over at a
quiet moment) and by a `kill -9`; the new stream's model session holds the history item by item
(the cut answer as far as it was heard), greets no one, and answers the caller's next turn. A
model socket that drops mid-call is reopened with the history instead of ending the call."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from tests.servers import Server
from tests.test_realtime_resume import kept
from voiceflow_channels.testing import callsim
from voiceflow_channels.testing.fake_realtime import FakeConnection, FakeRealtime, Reply, Script
from voiceflow_channels.testing.webhook import Twilio

GREETING = " ".join(f"w{n}" for n in range(75))  # 3 s said: a word every 40 ms
ASKED = "Where is my order?"
ANSWER = "Your order ships on Friday."
HELLO = "Thanks for calling."
# The caller talks over the greeting at 1 s, and again once the call has moved, at 6 s.
CALL_S, TALKS = 9.0, [(1.0, 1.0), (6.0, 1.0)]
PUBLIC = "ws://127.0.0.1"


def script() -> Script:
    return Script(
        speed=1.0,
        caller_transcripts=(ASKED,),
        replies=(Reply(audio_ms=3000, transcript=GREETING),),
        default_reply=Reply(audio_ms=600, transcript=ANSWER),
    )


def servers(fake: FakeRealtime, redis_url: str, **extra: str) -> tuple[Server, Server]:
    env = {
        "VOZ_FEATURE_VOICE_FLOW_A": "1",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "REDIS_URL": redis_url,
        "VOICEFLOW_PUBLIC_URL": PUBLIC,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        **extra,
    }
    return Server("daphne", **env), Server("uvicorn", **env)


@pytest.fixture
def shared_cache(settings, redis):
    """This process reads the servers' cache: the conversation they keep in Redis."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis.url}
    }
    return redis


def check_history(connection: FakeConnection) -> None:
    """The resumed session was given the conversation before any response: the greeting cut
    where the caller talked over it, the caller's words, the answer; and greeted no one."""
    greeting, asked, answer = connection.created_items[:3]
    [cut] = greeting["content"]
    assert greeting["role"] == "assistant" and cut["type"] == "output_text"
    assert cut["text"].endswith("…") and GREETING.startswith(cut["text"][:-1] + " "), cut
    assert 0 < len(cut["text"]) < len(GREETING) // 2, "cut near 1 s of 3 s, not whole"
    assert asked["role"] == "user" and asked["content"] == [{"type": "input_text", "text": ASKED}]
    assert answer["content"] == [{"type": "output_text", "text": ANSWER}]
    assert "already under way" in connection.sessions[0]["instructions"]


async def moved_call(fake: FakeRealtime, first: Server, live: Server, end: signal.Signals) -> Any:
    """Play the call with its first stream on `first`, Twilio's side on `live`; once the
    conversation is kept whole, send `first` the signal `end`."""
    twilio = Twilio.for_stream(live.url)
    playing = asyncio.create_task(
        callsim.run(first.url, 1, CALL_S, True, talk=TALKS, twilio=twilio, record=None)
    )
    [line] = await asyncio.to_thread(first.wait_for, "voiceflow start callSid=")
    call_sid = line.split("callSid=")[1].split()[0]
    await kept(call_sid, 3, within_s=15)  # the greeting as heard, the caller's words, the answer
    first.proc.send_signal(end)
    result = await asyncio.wait_for(playing, 30)
    [call] = result.calls
    assert call.ok, call.error
    assert len(call.legs) == 2
    # The second session: the history, then the caller's next turn answered with audio.
    connection = fake.connections[1]
    check_history(connection)
    assert connection.response_creates == 0, "no greeting: the caller simply talks"
    # The new session's one response answered the caller's next turn, and was heard.
    [answer] = connection.responses
    assert answer.started and call.legs[1].heard
    live.wait_for(rf"resumed callSid={call.call_sid}")
    return call


async def test_a_drain_hands_a_talking_call_over_to_another_process(shared_cache):
    async with FakeRealtime(script=script()) as fake:
        draining, live = servers(fake, shared_cache.url, VOICEFLOW_DRAIN_SECONDS="30")
        try:
            call = await moved_call(fake, draining, live, signal.SIGTERM)
            draining.wait_for(rf"call ended \(handed_over\) callSid={call.call_sid}")
            # Its only call was quiet: the process left long before its 30 s deadline.
            assert await asyncio.to_thread(draining.proc.wait, 10) == 0
            assert call.legs[0].then is not None and "Redirect" in call.legs[0].then
        finally:
            draining.stop()
            live.stop()


async def test_a_killed_process_loses_no_conversation(shared_cache):
    async with FakeRealtime(script=script()) as fake:
        dying, live = servers(fake, shared_cache.url)
        try:
            call = await moved_call(fake, dying, live, signal.SIGKILL)
            assert call.legs[0].close_code == callsim.DROPPED
        finally:
            dying.stop()
            live.stop()


async def test_a_model_socket_that_drops_is_reopened_with_the_history_on_a_real_server():
    drops = Script(
        speed=None,
        fail_after_s=4.0,
        fail_connections=frozenset({1}),
        caller_transcripts=(ASKED,),
        replies=(Reply(audio_ms=400, transcript=HELLO),),
        default_reply=Reply(audio_ms=600, transcript=ANSWER),
    )
    async with FakeRealtime(script=drops) as fake:
        server = Server(
            "uvicorn",
            VOZ_FEATURE_VOICE_FLOW_A="1",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=fake.base_url,
        )
        try:
            # The caller asks once the greeting was heard, at 1.2 s; the model's socket drops at
            # 4 s, after the answer; the caller asks again at 5 s.
            talks = [(1.2, 1.0), (5.0, 1.0)]
            result = await callsim.run(server.url, 1, 8.0, True, talk=talks)
            [call] = result.calls
            assert call.ok, call.error
            await asyncio.to_thread(server.wait_for, r"call ended \(stop\) callSid=CA")
            lines = list(server.lines)
        finally:
            server.stop()
    second = fake.connections[1]
    assert [i["content"] for i in second.created_items[:3]] == [
        [{"type": "output_text", "text": HELLO}],
        [{"type": "input_text", "text": ASKED}],
        [{"type": "output_text", "text": ANSWER}],
    ]
    assert second.response_creates == 0, "not greeted again"
    # The greeting and the first answer; then the new session's answer to the next turn (the
    # fake's script starts again per session: that is its first reply, 400 ms). No fallback.
    [again] = second.responses
    assert again.done and call.audio_ms == 400 + 600 + 400
    log = "\n".join(lines)
    assert "reopening the session with the conversation" in log
    assert "falling back" not in log
