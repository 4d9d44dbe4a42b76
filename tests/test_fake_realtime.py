"""The fake OpenAI Realtime server, driven by the real SDK client as our edge will drive it: the
GA session, the server VAD on the input clock, barge-in and late deltas, truncation as OpenAI
validates it, tool calls, and each way a real session fails."""

from __future__ import annotations

import asyncio
import base64
import math
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from voiceflow_channels.mulaw import BYTES_PER_MS, FRAME_BYTES, MULAW_SILENCE, linear_to_mulaw
from voiceflow_channels.testing.fake_realtime import (
    FakeRealtime,
    FunctionCall,
    FunctionOutput,
    Reply,
    Script,
)
from voiceflow_channels.testing.fake_realtime.script import tone
from voiceflow_channels.testing.fake_realtime.vad import EnergyVad, VadEvent

DEADLINE_S = 10  # a deadline for a broken test, never a pause

# The session our edge sends: GA shape, mu-law both ways, server VAD.
GA_SESSION: dict[str, Any] = {
    "type": "realtime",
    "model": "gpt-realtime",
    "output_modalities": ["audio"],
    "instructions": "You answer the phone for a shop.",
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
                "create_response": True,
                "interrupt_response": True,
            },
        },
        "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
    },
    "tools": [
        {
            "type": "function",
            "name": "check_order_status",
            "description": "Look an order up.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        }
    ],
    "tool_choice": "auto",
}


def loud(ms: int) -> bytes:
    """A caller's voice: a 300 Hz tone well over the VAD's threshold."""
    return linear_to_mulaw(
        round(8000 * math.sin(2 * math.pi * 300 * i / 8000)) for i in range(ms * BYTES_PER_MS)
    )


def silence(ms: int) -> bytes:
    return bytes([MULAW_SILENCE]) * (ms * BYTES_PER_MS)


@asynccontextmanager
async def connected(
    fake: FakeRealtime, *, session: bool = True, **options: Any
) -> AsyncIterator[AsyncRealtimeConnection]:
    """The SDK connected to the fake as the edge connects; the GA session sent and echoed."""
    client = AsyncOpenAI(api_key="sk-test", base_url=fake.base_url)
    async with client.realtime.connect(model="gpt-realtime", **options) as conn:
        if session:
            await conn.session.update(session=GA_SESSION)
            await until(conn, "session.updated")
        yield conn


async def until(conn: AsyncRealtimeConnection, event_type: str) -> list[Any]:
    """The events received up to and including the first of `event_type`."""
    events = []
    async with asyncio.timeout(DEADLINE_S):
        async for event in conn:
            # Every event parses to the SDK's own model for its type, never a fallback.
            assert type(event).__module__.startswith("openai.types.realtime"), event
            events.append(event)
            if event.type == event_type:
                return events
    raise AssertionError(f"the connection closed before {event_type}: {events}")


async def talk(conn: AsyncRealtimeConnection, audio: bytes) -> None:
    """Append `audio` in 20 ms frames, as the edge forwards Twilio's."""
    for start in range(0, len(audio), FRAME_BYTES):
        chunk = audio[start : start + FRAME_BYTES]
        await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())


def types(events: list[Any]) -> list[str]:
    return [event.type for event in events]


def audio_of(events: list[Any], response_id: str) -> bytes:
    return b"".join(
        base64.b64decode(e.delta)
        for e in events
        if e.type == "response.output_audio.delta" and e.response_id == response_id
    )


async def test_the_sdk_finds_the_fake_at_v1_realtime_with_its_model_and_bearer_key():
    async with FakeRealtime() as fake, connected(fake, session=False) as conn:
        [created] = await until(conn, "session.created")
        request = fake.connections[0].ws.request
        assert request.path == "/v1/realtime?model=gpt-realtime"
        assert request.headers["Authorization"] == "Bearer sk-test"
        assert "OpenAI-Beta" not in request.headers
        assert created.session.type == "realtime"
        assert created.session.model == "gpt-realtime"
        assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"


async def test_a_ga_session_update_is_echoed_whole_in_session_updated_and_recorded():
    async with FakeRealtime() as fake, connected(fake, session=False) as conn:
        await conn.session.update(session=GA_SESSION)
        events = await until(conn, "session.updated")
        session = events[-1].session
        assert session.audio.input.format.type == "audio/pcmu"
        assert session.audio.output.format.type == "audio/pcmu"
        assert session.audio.input.turn_detection.silence_duration_ms == 500
        assert session.tools[0].name == "check_order_status"
        assert session.instructions == GA_SESSION["instructions"]
        assert fake.sessions == [GA_SESSION]
        assert fake.client_event_types == ["session.update"]


async def test_a_turn_detection_of_just_its_type_gets_openais_defaults():
    async with FakeRealtime() as fake, connected(fake, session=False) as conn:
        turn = {"type": "server_vad"}
        await conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": turn}}}
        )
        [*_, updated] = await until(conn, "session.updated")
        detection = updated.session.audio.input.turn_detection
        assert (detection.silence_duration_ms, detection.prefix_padding_ms) == (500, 300)
        assert detection.create_response and detection.interrupt_response


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        # The beta shape: flat audio formats, a session with no type.
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "input_audio_format": "g711_ulaw"},
            },
            "unknown_parameter",
            "session.input_audio_format",
        ),
        (
            {"type": "session.update", "session": {"modalities": ["audio"], "voice": "alloy"}},
            "missing_required_parameter",
            "session.type",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": {"type": "g711_ulaw"}}},
                },
            },
            "invalid_value",
            "session.audio.input.format.type",
        ),
        # A server event's beta name sent as a client event; a field of the wrong type.
        ({"type": "response.audio.delta", "delta": ""}, "invalid_value", "type"),
        (
            {
                "type": "conversation.item.truncate",
                "item_id": "x",
                "content_index": 0,
                "audio_end_ms": "1s",
            },
            "invalid_type",
            "audio_end_ms",
        ),
    ],
)
async def test_a_beta_shaped_or_invalid_client_event_gets_an_error_and_the_session_goes_on(
    event, code, param
):
    async with FakeRealtime(Script(speed=None)) as fake, connected(fake) as conn:
        await conn.send({**event, "event_id": "evt_client_1"})
        [error] = await until(conn, "error")
        assert (error.error.type, error.error.code, error.error.param) == (
            "invalid_request_error",
            code,
            param,
        )
        assert error.error.event_id == "evt_client_1"
        assert fake.client_event_types[-1] == event["type"]
        await conn.response.create()
        await until(conn, "response.done")


async def test_the_beta_header_is_refused_with_beta_api_shape_disabled_then_close_4000():
    async with FakeRealtime() as fake:
        with pytest.raises(ConnectionClosedError) as closed:
            async with connected(
                fake, session=False, extra_headers={"OpenAI-Beta": "realtime=v1"}
            ) as conn:
                [error] = await until(conn, "error")
                assert error.error.code == "beta_api_shape_disabled"
                assert "no longer supported" in error.error.message
                await until(conn, "session.created")
        assert closed.value.rcvd.code == 4000
        connection = fake.connections[0]
        await fake.wait_for(connection.closed.is_set, "the beta connection closed")
        assert connection.beta and connection.close_code == 4000


async def test_a_refused_key_is_answered_http_401_at_the_handshake():
    async with FakeRealtime(Script(refuse_keys=frozenset({"sk-revoked"}))) as fake:
        client = AsyncOpenAI(api_key="sk-revoked", base_url=fake.base_url)
        with pytest.raises(InvalidStatus) as refused:
            async with client.realtime.connect(model="gpt-realtime"):
                pass
        assert refused.value.response.status_code == 401
        assert b"invalid_api_key" in refused.value.response.body
        assert (fake.handshakes_refused, fake.connections) == (1, [])


async def test_speech_then_silence_is_a_turn_on_the_input_clock_and_gets_a_response():
    script = Script(speed=None, replies=(Reply(audio_ms=1000, transcript="Hi there."),))
    async with FakeRealtime(script) as fake, connected(fake) as conn:
        await talk(conn, silence(500) + loud(600) + silence(600))
        events = await until(conn, "response.done")
        started, stopped = events[0], events[1]
        assert started.type == "input_audio_buffer.speech_started"
        assert started.audio_start_ms == 500 - 300  # speech began at 500 ms; the padding
        assert stopped.type == "input_audio_buffer.speech_stopped"
        assert stopped.audio_end_ms == 500 + 600 + 500  # the silence that ended it included
        assert stopped.item_id == started.item_id
        assert types(events)[2:5] == [
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
        ]
        assert events[3].item.role == "user"
        response_id = events[-1].response.id
        deltas = [e for e in events if e.type == "response.output_audio.delta"]
        assert any(len(base64.b64decode(d.delta)) % FRAME_BYTES for d in deltas)  # odd sizes
        assert len(audio_of(events, response_id)) == 1000 * BYTES_PER_MS
        assert audio_of(events, response_id) == tone(0, 1000 * BYTES_PER_MS)
        done = events[-1].response
        assert done.status == "completed"
        [message] = done.output
        assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
        assert message.content[0].transcript == "Hi there."
        assert fake.connections[0].appended_ms == 1700
        assert fake.speech_started_ms == [200]
        assert fake.client_event_types == ["session.update", "input_audio_buffer.append"]


async def test_a_response_plays_its_events_in_openais_order():
    async with FakeRealtime(Script(speed=None)) as fake, connected(fake) as conn:
        await conn.response.create()
        events = await until(conn, "response.done")
        order = [t for i, t in enumerate(types(events)) if t not in types(events)[:i]]
        assert order == [
            "response.created",
            "rate_limits.updated",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            "response.output_audio.delta",
            "response.output_audio_transcript.delta",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        assert fake.response_creates == 1


async def test_a_barge_in_cancels_as_turn_detected_and_scripted_late_deltas_follow_the_done():
    # Paced at real time, a 10 s reply is still playing when the caller speaks.
    script = Script(speed=1.0, late_deltas=2, default_reply=Reply(audio_ms=10_000))
    async with FakeRealtime(script) as fake, connected(fake) as conn:
        await conn.response.create()  # the greeting
        await until(conn, "response.output_audio.delta")
        await talk(conn, loud(100))
        events = await until(conn, "response.done")
        assert "input_audio_buffer.speech_started" in types(events)
        done = events[-1].response
        assert done.status == "cancelled"
        assert done.status_details.reason == "turn_detected"
        assert done.output[0].status == "incomplete"
        assert len(audio_of(events, done.id)) < 10_000 * BYTES_PER_MS
        late = [await until(conn, "response.output_audio.delta") for _ in range(2)]
        assert [e[0].response_id for e in late] == [done.id, done.id]
        record = await fake.wait_response_done(1)
        await fake.wait_for(lambda: record.late_deltas_sent == 2, "two late deltas")
        # The caller stops: the turn is answered by a new response.
        await talk(conn, silence(500))
        events = await until(conn, "response.created")
        assert events[-1].response.id != done.id


async def test_response_create_while_one_is_active_is_already_has_active_response():
    async with FakeRealtime(Script(speed=0.5)) as fake, connected(fake) as conn:
        await conn.response.create()
        await fake.wait_response_started(1)
        await conn.response.create()
        [*_, error] = await until(conn, "error")
        assert error.error.code == "conversation_already_has_active_response"
        assert fake.response_creates == 2
        assert len(fake.responses) == 1


async def test_response_cancel_is_client_cancelled_and_with_none_active_an_error():
    async with FakeRealtime(Script(speed=0.5)) as fake, connected(fake) as conn:
        await conn.response.cancel()
        [error] = await until(conn, "error")
        assert error.error.code == "response_cancel_not_active"
        await conn.response.create()
        await until(conn, "response.output_audio.delta")
        await conn.response.cancel()
        [*_, done] = await until(conn, "response.done")
        assert (done.response.status, done.response.status_details.reason) == (
            "cancelled",
            "client_cancelled",
        )


async def test_truncate_is_validated_as_openai_validates_it_and_every_one_is_recorded():
    async with FakeRealtime(Script(speed=None, default_reply=Reply(audio_ms=1000))) as fake:
        async with connected(fake) as conn:
            await conn.response.create()
            [*_, done] = await until(conn, "response.done")
            item_id = done.response.output[0].id
            await talk(conn, silence(200))
            await conn.input_audio_buffer.commit()
            [*_, user] = await until(conn, "conversation.item.done")

            await conn.conversation.item.truncate(
                item_id=item_id, content_index=0, audio_end_ms=1001
            )
            [error] = await until(conn, "error")
            assert error.error.message == "Audio content of 1000ms is already shorter than 1001ms"
            assert error.error.type == "invalid_request_error"
            for bad_item, bad_ms in ((item_id, -5), ("item_unknown", 0), (user.item.id, 0)):
                await conn.conversation.item.truncate(
                    item_id=bad_item, content_index=0, audio_end_ms=bad_ms
                )
                await until(conn, "error")
            await conn.conversation.item.truncate(
                item_id=item_id, content_index=0, audio_end_ms=400
            )
            [truncated] = await until(conn, "conversation.item.truncated")
            assert (truncated.item_id, truncated.audio_end_ms) == (item_id, 400)

        errors = [e["code"] for e in fake.errors_sent]
        assert errors == [
            "invalid_value",
            "integer_below_min_value",
            "item_not_found",
            "unsupported_content_type",
        ]
        assert (
            fake.errors_sent[-1]["message"] == "Only model output audio messages can be truncated"
        )
        assert [(t.item_id, t.audio_end_ms, t.generated_ms, t.error) for t in fake.truncates] == [
            (item_id, 1001, 1000, "invalid_value"),
            (item_id, -5, 1000, "integer_below_min_value"),
            ("item_unknown", 0, None, "item_not_found"),
            (user.item.id, 0, 0, "unsupported_content_type"),
            (item_id, 400, 1000, None),
        ]


async def test_a_truncate_before_any_audio_of_the_item_is_unsupported_content_type():
    # The model takes its time to first audio: the item exists, with no audio yet.
    async with FakeRealtime(Script(first_delta_ms=60_000)) as fake, connected(fake) as conn:
        await conn.response.create()
        [*_, added] = await until(conn, "response.output_item.added")
        await conn.conversation.item.truncate(
            item_id=added.item.id, content_index=0, audio_end_ms=0
        )
        [*_, error] = await until(conn, "error")
        assert error.error.code == "unsupported_content_type"
        assert error.error.message == "Only model output audio messages can be truncated"
        assert fake.truncates[0].generated_ms == 0
        await conn.response.cancel()
        [*_, done] = await until(conn, "response.done")
        assert audio_of([done], done.response.id) == b""


async def test_a_tool_call_then_its_output_and_response_create_give_the_answer_audio():
    call = FunctionCall("check_order_status", '{"order_id": "42"}')
    script = Script(
        speed=None,
        replies=(
            Reply(audio_ms=300, transcript="One moment.", function_calls=(call,)),
            Reply(audio_ms=500, transcript="It shipped yesterday."),
        ),
    )
    async with FakeRealtime(script) as fake, connected(fake) as conn:
        await conn.response.create()
        events = await until(conn, "response.done")
        done = events[-1].response
        assert done.status == "completed"
        preamble, function_call = done.output
        assert preamble.type == "message" and len(audio_of(events, done.id)) == 300 * BYTES_PER_MS
        assert (function_call.type, function_call.name, function_call.arguments) == (
            "function_call",
            "check_order_status",
            '{"order_id": "42"}',
        )
        [arguments] = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert arguments.call_id == function_call.call_id

        output = {
            "type": "function_call_output",
            "call_id": function_call.call_id,
            "output": '{"status": "shipped"}',
        }
        await conn.conversation.item.create(item=output)
        await until(conn, "conversation.item.done")
        await conn.response.create()
        events = await until(conn, "response.done")
        answer = events[-1].response
        assert [item.type for item in answer.output] == ["message"]
        assert answer.output[0].content[0].transcript == "It shipped yesterday."
        assert len(audio_of(events, answer.id)) == 500 * BYTES_PER_MS
        assert fake.function_outputs == [
            FunctionOutput(function_call.call_id, '{"status": "shipped"}')
        ]


async def test_a_tool_output_for_an_unknown_call_id_is_an_error():
    async with FakeRealtime() as fake, connected(fake) as conn:
        output = {"type": "function_call_output", "call_id": "call_nope", "output": "{}"}
        await conn.conversation.item.create(item=output)
        [error] = await until(conn, "error")
        assert error.error.param == "item.call_id"
        assert fake.function_outputs == []


async def test_a_handshake_never_answered_leaves_the_client_to_its_own_connect_timeout():
    async with FakeRealtime(Script(hang_handshake=True)) as fake:
        client = AsyncOpenAI(api_key="sk-test", base_url=fake.base_url)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5), client.realtime.connect(model="gpt-realtime"):
                pass
        assert fake.handshakes_hung == 1
        assert fake.connections == []


async def test_a_session_ending_server_error_is_sent_then_the_socket_closes_1011():
    async with FakeRealtime(Script(fail_after_s=0)) as fake:
        with pytest.raises(ConnectionClosedError) as closed:
            async with connected(fake, session=False) as conn:
                events = await until(conn, "error")
                assert events[-1].error.type == "server_error"
                await until(conn, "session.updated")
        assert closed.value.rcvd.code == 1011


async def test_the_session_cap_closes_1001_and_a_reconnect_opens_a_second_session():
    async with FakeRealtime(Script(session_cap_s=0.05)) as fake:
        async with connected(fake, session=False) as conn:
            [*_, error] = await until(conn, "error")
            assert error.error.code == "session_expired"
            assert [event async for event in conn] == []  # 1001 ends the iteration cleanly
        connection = await fake.wait_connections(1)
        await fake.wait_for(connection.closed.is_set, "the first session closed")
        assert connection.close_code == 1001
        async with connected(fake, session=False) as conn:
            await until(conn, "session.created")
        assert len(fake.connections) == 2


async def test_rate_limits_updated_follows_response_created_and_a_rate_limit_is_an_error():
    async with FakeRealtime(Script(speed=None, rate_limited_responses=frozenset({0}))) as fake:
        async with connected(fake) as conn:
            await conn.response.create()
            [error] = await until(conn, "error")
            assert (error.error.code, error.error.type) == ("rate_limit_exceeded", "tokens")
            await conn.response.create()
            events = await until(conn, "response.done")
            assert types(events)[:2] == ["response.created", "rate_limits.updated"]
            assert {limit.name for limit in events[1].rate_limits} == {"requests", "tokens"}
        assert [r.number for r in fake.responses] == [1]


async def test_a_crash_of_the_fake_itself_fails_the_test_instead_of_going_quiet():
    fake = FakeRealtime(Script(speed=None))
    with pytest.raises(RuntimeError, match="the fake Realtime server failed"):
        async with fake, connected(fake) as conn:
            # As if the SDK had renamed a field the fake fills in.
            fake.connections[0].session["audio"]["output"]["format"]["rate"] = 8000
            await conn.response.create()
            with pytest.raises(TypeError, match="openai SDK's models changed"):
                await fake.wait_response_done(1)


def test_the_vad_times_speech_on_the_input_clock_whatever_the_chunk_sizes():
    vad = EnergyVad(threshold_rms=500, start_ms=60)
    audio = silence(400) + loud(40) + silence(100) + loud(300) + silence(520)
    events = []
    for start in range(0, len(audio), 333):  # odd chunks, not frames
        events += vad.feed(audio[start : start + 333], silence_ms=500, prefix_padding_ms=300)
    # 40 ms of voice is no speech; the 300 ms that follow are, from 540 ms on.
    assert events == [VadEvent("started", 540 - 300), VadEvent("stopped", 540 + 300 + 500)]


async def test_the_cli_prints_its_base_url_and_serves_the_sdk():
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voiceflow_channels.testing.fake_realtime",
        "--port=0",
        "--speed=0",
        "--audio-ms=200",
        '--tool=0:check_order_status:{"order_id": "7"}',
        "--log",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(DEADLINE_S):
            line = (await process.stdout.readline()).decode()
        match = re.fullmatch(r"fake realtime listening on (http://127\.0\.0\.1:\d+/v1)\n", line)
        assert match, line
        client = AsyncOpenAI(api_key="sk-test", base_url=match[1])
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.session.update(session=GA_SESSION)
            await conn.response.create()
            [*_, done] = await until(conn, "response.done")
            assert [item.type for item in done.response.output] == ["function_call"]
            assert done.response.output[0].arguments == '{"order_id": "7"}'
        async with asyncio.timeout(DEADLINE_S):
            log = [(await process.stdout.readline()).decode() for _ in range(2)]
        assert log[0] == "connection 1 opened model=gpt-realtime\n"
        assert log[1].startswith("response resp_") and log[1].endswith(" completed\n")
    finally:
        process.terminate()
        assert await process.wait() == 0
