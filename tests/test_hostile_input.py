"""Hostile input through the consumer: every frame is accounted for, nothing raises, the call
goes on, and no call sees another's state."""

from __future__ import annotations

import json
import re

from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.utils import expect_server_close, open_stream, send_all
from voiceflow_channels.routing import build_router
from voiceflow_channels.testing import SimulatedCall

COUNTED = ("frames", "marks", "dtmf", "unknown", "malformed")
FUZZ_FRAMES = 100_000


def counters(summary: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)\b", summary)}


def strict_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON (RFC 8259)")


def is_connected_event(frame: str | bytes) -> bool:
    try:
        d = json.loads(frame, parse_constant=strict_json)
    except (ValueError, TypeError, RecursionError):
        return False
    return isinstance(d, dict) and d.get("event") == "connected"


OUR_STREAM = SimulatedCall(n=1).stream_sid
field_values = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=24),
    st.dictionaries(
        st.sampled_from(["payload", "name", "digit", "track", "callSid", "customParameters"]),
        st.one_of(
            st.none(), st.integers(), st.text(max_size=24), st.sampled_from(["AAAA", "/w=="])
        ),
        max_size=3,
    ),
)
# Twilio-shaped events with hostile fields, some aimed at the live stream; never a `stop`,
# which would end the call before the frames after it are counted.
twilio_ish = st.builds(
    lambda event, field, value, seq, stream: json.dumps(
        {"event": event, "sequenceNumber": seq, "streamSid": stream, field: value}
    ),
    st.sampled_from(["connected", "start", "media", "mark", "dtmf", "", "MEDIA", "x" * 50]),
    st.sampled_from(["media", "start", "mark", "dtmf"]),
    field_values,
    st.one_of(st.integers(0, 10**6).map(str), st.text(max_size=4), st.integers()),
    st.sampled_from([OUR_STREAM, OUR_STREAM, "MZ" + "1" * 32, None, 7]),
)
hostile_frame = st.one_of(
    twilio_ish,
    st.text(max_size=200),
    st.binary(max_size=200),
    st.sampled_from(
        [
            "",
            "[]",
            "null",
            "0",
            '"media"',
            "{" * 5000,
            "x" * 20_000,
            json.dumps({"event": "media", "media": {"payload": "A" * 20_000}}),
        ]
    ),
)


async def play_call(router, frames: list[str | bytes], valid_media: int) -> None:
    call = SimulatedCall(n=1)
    ws = await open_stream(router)
    await send_all(ws, [call.connected(), call.start()])
    for frame in frames:  # send_input: the communicator's send_to refuses empty frames
        key = "bytes" if isinstance(frame, bytes) else "text"
        await ws.send_input({"type": "websocket.receive", key: frame})
    await send_all(ws, [call.media() for _ in range(valid_media)] + [call.stop()])
    await expect_server_close(ws)


def test_consumer_accounts_for_every_hostile_frame(flag_on, summaries, caplog):
    flag_on.VOICEFLOW_MAX_MESSAGE_BYTES = "16384"
    sent = []
    router = build_router()

    @settings(
        max_examples=520,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        frames=st.lists(hostile_frame, min_size=195, max_size=200), valid_media=st.integers(1, 3)
    )
    def one_call(frames, valid_media):
        sent.append(len(frames))
        caplog.clear()
        async_to_sync(play_call)(router, frames, valid_media)
        got = counters(summaries()[-1])
        connected = sum(map(is_connected_event, frames))
        assert got["frames"] >= valid_media
        assert sum(got[k] for k in COUNTED) + connected == len(frames) + valid_media

    one_call()
    assert sum(sent) >= FUZZ_FRAMES


async def test_named_hostile_cases(flag_on, summaries):
    call = SimulatedCall(n=2)
    other = SimulatedCall(n=3)
    other.start()
    deep = "[" * 8_000 + "]" * 8_000  # valid JSON within the size bound, nested 8,000 deep
    ws = await open_stream()
    frames = [
        call.media(),  # media before start
        call.connected(),
        call.start(FirstName="x", tenantz="evil"),
        deep,
        json.dumps({"event": "start", "start": json.loads(other.start())["start"]}),
        other.media(),  # another stream's event
        json.dumps(
            {
                "event": "media",
                "streamSid": call.stream_sid,
                "sequenceNumber": "3",
                "media": {"payload": "\u0000\u202e"},
            }
        ),
        call.media(),
    ]
    await send_all(ws, frames)
    await ws.send_to(bytes_data=b"\xff\xfe")
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    [summary] = summaries()
    assert f"callSid={call.call_sid}" in summary and "tenant=t1" in summary
    got = counters(summary)
    assert got["frames"] == 1 and got["malformed"] == 8
    assert (
        "drops=bad_media:1,before_start:1,binary:1,custom_parameter:2,not_json_event:1,"
        "second_start:1,wrong_stream:1"
    ) in summary
