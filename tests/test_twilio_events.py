"""The Twilio wire format: Twilio's documented samples, malformed and hostile events."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiceflow_channels.testing import SimulatedCall
from voiceflow_channels.twilio_events import (
    Limits,
    custom_parameters,
    decode_message,
    event_name,
    is_twilio_stop,
    mask_phone,
    parse_twilio_dtmf,
    parse_twilio_mark,
    parse_twilio_media,
    parse_twilio_start,
    sequence_number,
)

# From Twilio's Media Streams "WebSocket Messages" documentation.
DOC_START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "tracks": ["inbound", "outbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
    },
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
}
DOC_MEDIA = {
    "event": "media",
    "sequenceNumber": "3",
    "media": {
        "track": "outbound",
        "chunk": "1",
        "timestamp": "5",
        "payload": "no+JhoaJjpzSHxAKBgYJDhtEopGKh4aIjZm7JhILBwYIDBc0n5SLh4aHi5SsLBUMCAYHChEr",
    },
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
}
DOC_STOP = {
    "event": "stop",
    "sequenceNumber": "5",
    "stop": {
        "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    },
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
}
DOC_MARK = {
    "event": "mark",
    "sequenceNumber": "4",
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "mark": {"name": "my label"},
}
DOC_DTMF = {
    "event": "dtmf",
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "sequenceNumber": "5",
    "dtmf": {"track": "inbound_track", "digit": "1"},
}
DOC_CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}


def with_params(**params: object) -> dict:
    return {**DOC_START, "start": {**DOC_START["start"], "customParameters": params}}


def test_doc_start_parses_every_field_later_slices_need():
    start = parse_twilio_start(DOC_START)
    assert start == {
        "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "tracks": ["inbound", "outbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {},
        "droppedParameters": 3,
        "tenant_id": None,
        "from_number": None,
        "to_number": None,
    }


def test_doc_media_decodes_the_payload():
    expected = base64.b64decode(DOC_MEDIA["media"]["payload"])
    assert parse_twilio_media(DOC_MEDIA) == expected
    assert sequence_number(DOC_MEDIA) == 3


def test_stop_mark_dtmf_connected():
    assert is_twilio_stop(DOC_STOP)
    assert not is_twilio_stop(DOC_MEDIA)
    assert parse_twilio_mark(DOC_MARK) == "my label"
    assert parse_twilio_dtmf(DOC_DTMF) == "1"
    assert event_name(DOC_CONNECTED) == "connected"
    assert event_name({"event": "future-thing"}) == "unknown"
    assert event_name({"event": 3}) is None


@pytest.mark.parametrize("key", ["tenant_id", "tenantId", "tenant"])
def test_tenant_from_each_allowlisted_key_is_stripped(key):
    assert parse_twilio_start(with_params(**{key: "  acme-1  "}))["tenant_id"] == "acme-1"


@pytest.mark.parametrize("key", ["from_number", "from", "From", "caller"])
def test_from_number_from_each_allowlisted_key(key):
    start = parse_twilio_start(with_params(**{key: " +15551234567 "}))
    assert start["from_number"] == "+15551234567"


@pytest.mark.parametrize("key", ["to_number", "to", "To", "called"])
def test_the_number_dialled_from_each_allowlisted_key(key):
    start = parse_twilio_start(with_params(**{key: " +15550001111 "}))
    assert start["to_number"] == "+15550001111"
    assert parse_twilio_start(with_params(**{key: "<script>"}))["to_number"] is None


def test_tenant_off_the_allowlist_never_reaches_the_result():
    start = parse_twilio_start(with_params(Tenant="evil", TENANT_ID="evil", tenant_idx="evil"))
    assert start["tenant_id"] is None
    assert start["customParameters"] == {}
    assert start["droppedParameters"] == 3


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "a b",
        "acme;drop",
        "ten\x00ant",
        "t\nx",
        "é-tenant",
        "-leading",
        "x" * 65,
        7,
        None,
        ["acme"],
        {"a": 1},
    ],
)
def test_bad_tenant_values_are_rejected(value):
    assert parse_twilio_start(with_params(tenant_id=value))["tenant_id"] is None


@pytest.mark.parametrize("value", ["+1 555", "555-1234", "+" + "1" * 30, "\u202e+1555", "12"])
def test_bad_from_values_are_rejected(value):
    assert parse_twilio_start(with_params(**{"from": value}))["from_number"] is None


def test_too_many_custom_parameters_drops_them_all():
    params = {f"k{i}": "v" for i in range(16)} | {"tenant_id": "acme"}
    start = parse_twilio_start(with_params(**params))
    assert start["tenant_id"] is None
    assert start["droppedParameters"] == 17


def test_parameter_value_length_bound_is_configurable():
    limits = Limits(max_parameter_value_chars=4, max_tenant_chars=64)
    assert custom_parameters({"tenant_id": "acme"}, limits) == ({"tenant_id": "acme"}, 0)
    assert custom_parameters({"tenant_id": "acme2"}, limits) == ({}, 1)


def test_tenant_length_bound():
    assert parse_twilio_start(with_params(tenant_id="t" * 64))["tenant_id"] == "t" * 64
    limits = Limits(max_tenant_chars=8)
    assert parse_twilio_start(with_params(tenant_id="t" * 9), limits)["tenant_id"] is None


@pytest.mark.parametrize(
    "bad",
    [
        None,
        1,
        "start",
        [],
        {},
        {"event": "start"},
        {"event": "start", "start": []},
        {"event": "start", "start": {"streamSid": "MZ1", "callSid": 5}},
        {"event": "start", "start": {"streamSid": "MZ 1", "callSid": "CA1"}},
        {"event": "start", "start": {"streamSid": "MZ1", "callSid": "CA" + "x" * 80}},
        {"event": "media", "start": DOC_START["start"]},
    ],
)
def test_unusable_start_is_none(bad):
    assert parse_twilio_start(bad) is None


@pytest.mark.parametrize(
    "media",
    [
        None,
        [],
        "AAAA",
        {},
        {"payload": None},
        {"payload": 5},
        {"payload": ""},
        {"payload": "not base64!"},
        {"payload": "AAA"},
        {"payload": "AA==AA=="},
        {"payload": "A" * 10_672},
        {"payload": b"AAAA"},
    ],
)
def test_malformed_media_is_none(media):
    assert parse_twilio_media({**DOC_MEDIA, "media": media}) is None


def test_media_size_bound():
    exactly = base64.b64encode(b"\x00" * 8000).decode()
    assert parse_twilio_media({"event": "media", "media": {"payload": exactly}}) is not None
    small = Limits(max_payload_bytes=160)
    assert parse_twilio_media({"event": "media", "media": {"payload": exactly}}, small) is None


def test_decode_message():
    assert decode_message(json.dumps(DOC_MEDIA)) == DOC_MEDIA
    for text in ["", "nope", "[1]", "3", "null", '"s"', '{"event": 1}', "{}", b"{}", None]:
        assert decode_message(text) is None


def test_mask_phone_keeps_only_the_last_four():
    assert mask_phone("+15551234567") == "********4567"
    assert mask_phone(None) == "-"
    assert mask_phone("123") == "123"


def test_simulated_call_frames_parse():
    call = SimulatedCall(n=7)
    start = parse_twilio_start(json.loads(call.start()))
    assert start["callSid"] == call.call_sid
    assert start["tenant_id"] == "t1"
    assert parse_twilio_media(json.loads(call.media())) == b"\xff" * 160


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
event_names = st.sampled_from(["connected", "start", "media", "stop", "mark", "dtmf", "x"])
event_like = st.fixed_dictionaries(
    {"event": event_names},
    optional={
        "sequenceNumber": st.one_of(st.text(max_size=5), st.integers(), json_values),
        "streamSid": json_values,
        "start": st.fixed_dictionaries(
            {},
            optional={
                "streamSid": st.text(max_size=40),
                "callSid": st.text(max_size=40),
                "customParameters": st.dictionaries(st.text(max_size=12), json_values, max_size=6),
                "tracks": json_values,
                "mediaFormat": json_values,
            },
        )
        | json_values,
        "media": st.fixed_dictionaries({}, optional={"payload": st.text(max_size=40)})
        | json_values,
        "mark": json_values,
        "dtmf": json_values,
    },
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(json_values, event_like))
def test_no_parser_raises_on_arbitrary_json(d):
    start = parse_twilio_start(d)
    assert start is None or isinstance(start["callSid"], str)
    assert parse_twilio_media(d) is None or isinstance(parse_twilio_media(d), bytes)
    assert isinstance(is_twilio_stop(d), bool)
    assert parse_twilio_mark(d) is None or isinstance(parse_twilio_mark(d), str)
    assert parse_twilio_dtmf(d) is None or len(parse_twilio_dtmf(d)) == 1
    assert event_name(d) in (None, "connected", "start", "media", "stop", "mark", "dtmf", "unknown")
    assert sequence_number(d) is None or sequence_number(d) >= 0


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.text(), st.binary(), json_values.map(json.dumps)))
def test_decode_message_never_raises(text):
    d = decode_message(text)
    assert d is None or isinstance(d["event"], str)
