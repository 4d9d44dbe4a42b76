"""The conversation outlives its stream, in process through the real router with the fake
Realtime server: kept in the cache as it happens (the caller's words, the assistant's as heard),
given to the next stream of the same call before any response and never greeted again, an
interrupted tool call closed for the model, a model session that drops reopened with the
history, a cache that fails, and the drain's hand-over at a quiet moment."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.realtime_twilio import Twilio, ended
from tests.utils import metric
from voiceflow_channels.conversation_store import ConversationRecord
from voiceflow_channels.realtime import RealtimeAssistant
from voiceflow_channels.realtime.conversation import INTERRUPTED
from voiceflow_channels.streams import STREAMS
from voiceflow_channels.testing.fake_realtime import Reply, Script
from voiceflow_channels.testing.simulated_call import sid

pytestmark = pytest.mark.usefixtures("fresh_cache")

ANSWER = "Your order ships on Friday, by the morning post."


class Shop(RealtimeAssistant):
    instructions = "Sell."
    greeting = "Hello, this is the shop."


async def kept(call_sid: str, count: int, within_s: float = 10) -> list[dict[str, Any]]:
    """The call's conversation in the cache, once it holds `count` entries."""
    record = ConversationRecord(call_sid)
    async with asyncio.timeout(within_s):
        while True:
            saved = await record.load()
            if isinstance(saved, list) and len(saved) >= count:
                return saved
            await asyncio.sleep(0.01)  # the record is written off the call's path


def said(saved: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(entry["kind"], entry["text"]) for entry in saved]


async def a_turn(twilio: Twilio, echo: bool = True) -> None:
    await twilio.say(25)
    await twilio.pause()
    await twilio.play_until(ended, echo=echo)


async def test_each_item_is_kept_in_the_cache_as_it_completes(fake):
    fake.script = Script(
        speed=None,
        caller_transcripts=("Where is my order?",),
        replies=(Reply(audio_ms=600, transcript="Hello, this is the shop."),),
        default_reply=Reply(audio_ms=600, transcript=ANSWER),
    )
    twilio = Twilio(Shop)
    await twilio.start()
    await twilio.play_until(ended)  # the greeting, heard whole
    await a_turn(twilio)
    saved = await kept(twilio.call.call_sid, 3)
    assert said(saved) == [
        ("assistant", "Hello, this is the shop."),
        ("user", "Where is my order?"),
        ("assistant", ANSWER),
    ]
    [session] = fake.sessions
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe"}
    await twilio.hang_up()


async def test_an_answer_cut_by_a_barge_in_is_kept_as_far_as_it_was_heard(fake):
    words = " ".join(f"w{n}" for n in range(100))  # 4 s said: a word every 40 ms
    fake.script = Script(speed=2.0, replies=(Reply(audio_ms=4000, transcript=words),))
    twilio = Twilio(RealtimeAssistant)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    marks: list[str] = []

    def fifth_mark(message: dict[str, Any]) -> bool:
        if message["event"] == "mark":
            marks.append(message["mark"]["name"])
        return len(marks) == 5

    await twilio.play_until(fifth_mark)  # 500 ms heard
    await twilio.say(10)  # the caller speaks over it
    await twilio.play_until(lambda m: m["event"] == "clear", echo=False)
    saved = await kept(twilio.call.call_sid, 2)
    [text] = [text for kind, text in said(saved) if kind == "assistant"]
    assert text.endswith("…") and words.startswith(text[:-1] + " "), text
    [truncate] = fake.truncates
    # The fake's transcript is what it generated, in proportion to its audio; the caller heard
    # the truncate's share of that audio, so of those words.
    generated = len(words) * truncate.generated_ms // 4000
    heard = generated * truncate.audio_end_ms // truncate.generated_ms
    assert heard - 4 <= len(text) - 1 <= heard, (text, heard)
    await twilio.hang_up()


async def test_a_new_stream_for_the_call_resumes_with_the_history_and_no_greeting(fake, caplog):
    fake.script = Script(
        speed=None,
        caller_transcripts=("Where is my order?",),
        replies=(Reply(audio_ms=400, transcript="Hello, this is the shop."),),
        default_reply=Reply(audio_ms=400, transcript=ANSWER),
    )
    resumed = metric("voiceflow_conversations_resumed_total", how="stream")
    first = Twilio(Shop)
    await first.start()
    await first.play_until(ended)
    await a_turn(first)
    await kept(first.call.call_sid, 3)
    await first.ws.disconnect()  # the socket is lost: no stop, no decision

    second = Twilio(Shop)
    second.call.stream_sid = sid("MZ", 2)  # Twilio's redirect: same call, a new stream
    await second.start()
    connection = await fake.wait_connections(2)
    await fake.wait_for(lambda: len(connection.created_items) == 3, "the history")
    assert [(i["type"], i.get("role")) for i in connection.created_items] == [
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert connection.created_items[1]["content"] == [
        {"type": "input_text", "text": "Where is my order?"}
    ]
    assert connection.created_items[2]["content"] == [{"type": "output_text", "text": ANSWER}]
    assert connection.response_creates == 0, "no greeting: the caller simply talks"
    assert "already under way" in connection.sessions[0]["instructions"]
    assert connection.sessions[0]["output_modalities"] == ["audio"], "the answer must speak"
    assert metric("voiceflow_conversations_resumed_total", how="stream") == resumed + 1
    await a_turn(second)  # the caller talks: the model answers, with audio
    assert second.audio(), "answered by speaking"
    await second.hang_up()
    assert "resumed callSid=CA" in caplog.text


async def test_a_tool_call_whose_process_died_is_closed_as_interrupted(fake):
    call_sid = sid("CA", 1)
    ConversationRecord(call_sid).save(
        [
            {"kind": "user", "item_id": "item_u1", "text": "Where is order 42?"},
            {
                "kind": "function_call",
                "item_id": "item_f1",
                "call_id": "call_1",
                "name": "check_order_status",
                "arguments": '{"order_id": "42"}',
            },
        ]
    )
    await kept(call_sid, 2)
    twilio = Twilio(Shop)
    await twilio.start()
    connection = await fake.wait_connections(1)
    await fake.wait_for(lambda: len(connection.created_items) == 3, "the history")
    user, call, output = connection.created_items
    assert user["content"] == [{"type": "input_text", "text": "Where is order 42?"}]
    assert call["type"] == "function_call" and call["call_id"] == "call_1"
    assert output["type"] == "function_call_output" and output["output"] == INTERRUPTED
    assert not connection.errors_sent, "the fake took the output for the replayed call"
    await twilio.hang_up()


async def test_a_model_session_that_drops_is_reopened_with_the_history(fake, summaries):
    fake.script = Script(
        speed=None,
        fail_after_s=1.0,
        fail_connections=frozenset({1}),
        caller_transcripts=("Where is my order?",),
        default_reply=Reply(audio_ms=400, transcript=ANSWER),
    )
    resumed = metric("voiceflow_conversations_resumed_total", how="model")
    twilio = Twilio(RealtimeAssistant)
    await twilio.start()
    await fake.wait_connections(1)
    await a_turn(twilio)
    second = await fake.wait_connections(2)
    await fake.wait_for(lambda: len(second.created_items) == 2, "the history")
    assert [i["content"][0]["text"] for i in second.created_items] == [
        "Where is my order?",
        ANSWER,
    ]
    start = len(twilio.sent)
    await a_turn(twilio)
    assert twilio.audio(start), "the call goes on: answered on the new session"
    assert metric("voiceflow_conversations_resumed_total", how="model") == resumed + 1
    await twilio.hang_up()
    assert summaries()[0].startswith("voiceflow call ended (stop)"), "no fallback, no hang-up"


class Sorry(RealtimeAssistant):
    resume_line = "Sorry, we were cut off."


async def test_a_resume_line_is_said_when_a_moved_call_carries_on(fake):
    ConversationRecord(sid("CA", 1)).save([{"kind": "user", "item_id": "i1", "text": "Hi."}])
    await kept(sid("CA", 1), 1)
    twilio = Twilio(Sorry)
    await twilio.start()
    await twilio.play_until(ended)
    assert fake.response_creates == 1
    assert twilio.audio(), "the line is spoken"
    await twilio.hang_up()


async def test_without_transcription_nothing_is_kept_and_a_moved_call_starts_over(fake):
    class Forgetful(Shop):
        transcription_model = None

    ConversationRecord(sid("CA", 1)).save([{"kind": "user", "item_id": "i1", "text": "Hi."}])
    await kept(sid("CA", 1), 1)
    twilio = Twilio(Forgetful)
    await twilio.start()
    await twilio.play_until(ended)
    connection = fake.connections[0]
    assert connection.created_items == [] and connection.response_creates == 1, "greeted"
    assert "transcription" not in fake.sessions[0]["audio"]["input"]
    await twilio.hang_up()


async def test_a_cache_that_fails_is_counted_and_the_call_goes_on(fake, settings, summaries):
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        },
    }
    settings.VOICEFLOW_CONVERSATION_CACHE = "down"
    loads = metric("voiceflow_conversation_failures_total", op="load")
    saves = metric("voiceflow_conversation_failures_total", op="save")
    fake.script = Script(speed=None, replies=(Reply(audio_ms=300),))
    twilio = Twilio(Shop)
    await twilio.start()
    await twilio.play_until(ended)  # greeted: the failed read started it over
    assert metric("voiceflow_conversation_failures_total", op="load") == loads + 1
    await a_turn(twilio)
    await twilio.hang_up()
    assert "(stop)" in summaries()[0]
    # Polled: each write fails in its thread, after redis-py's retries, and tells no one.
    async with asyncio.timeout(10):
        while metric("voiceflow_conversation_failures_total", op="save") == saves:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_drain_hands_a_call_over_at_its_next_quiet_moment(fake, summaries):
    fake.script = Script(speed=None, default_reply=Reply(audio_ms=400, transcript=ANSWER))
    handed = metric("voiceflow_calls_handed_over_total")
    twilio = Twilio(RealtimeAssistant)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    await twilio.play_until(lambda m: m["event"] == "media", echo=False)  # the answer plays
    [stream] = STREAMS.live
    hand_over = asyncio.create_task(stream.hand_over())
    await asyncio.sleep(0.05)  # a moment for it to act if it wrongly would
    assert not hand_over.done() and not stream.assistant.quiet, "not while the answer plays"
    await twilio.play_until(lambda m: False)  # the marks echo; then the stream closes
    await hand_over
    assert twilio.closed
    assert metric("voiceflow_calls_handed_over_total") == handed + 1
    await twilio.ws.disconnect()
    assert summaries()[0].startswith("voiceflow call ended (handed_over)")
    saved = await kept(twilio.call.call_sid, 2)
    assert said(saved)[-1] == ("assistant", ANSWER), "kept before the close"
