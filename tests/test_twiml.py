"""The TwiML the voice webhooks answer, byte for byte what twilio's own VoiceResponse writes,
hostile values included."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from voiceflow_channels import twiml

STREAM_URL = "wss://voice.example.com/twilio/stream"
ACTION_URL = "https://voice.example.com/twilio/voice/after"
# Quotes, markup, entities, an apostrophe, non-ASCII, a newline and a tab: all must arrive as
# they were, and none may end the attribute or open an element.
HOSTILE = [
    '"/><Hangup/><Parameter name="x',
    "</Stream></Connect><Dial>+19005550100</Dial>",
    "a & b &amp; &#x41; ]]>",
    "O'Brien",
    "Zoë 東京 ✓ \U0001f4de",
    "line one\nline two\ttabbed\r",
    "",
]
# Characters XML 1.0 cannot carry: most control characters, a lone surrogate, U+FFFE.
UNCARRIABLE = ["\x00", "\x08", "\x1b", "\ud800", "\ufffe"]


def voice_response(*verbs) -> str:
    response = VoiceResponse()
    for verb in verbs:
        response.append(verb)
    return str(response)


def twilio_connect(stream_url: str, action_url: str, parameters: dict[str, str]) -> str:
    connect = Connect(action=action_url)
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    return voice_response(connect)


def test_connect_stream_is_twilios():
    parameters = {"from_number": "+15551234567", "tenant_id": "acme"}
    ours = twiml.connect_stream(STREAM_URL, ACTION_URL, parameters)
    assert ours == twilio_connect(STREAM_URL, ACTION_URL, parameters)
    assert ours == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        '<Connect action="https://voice.example.com/twilio/voice/after">'
        '<Stream url="wss://voice.example.com/twilio/stream">'
        '<Parameter name="from_number" value="+15551234567" />'
        '<Parameter name="tenant_id" value="acme" /></Stream></Connect></Response>'
    )


def test_a_stream_without_parameters_is_twilios():
    assert twiml.connect_stream(STREAM_URL, ACTION_URL, {}) == twilio_connect(
        STREAM_URL, ACTION_URL, {}
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_escaped_as_twilio_escapes_them_and_read_back_whole(value):
    action = f"{ACTION_URL}?a=1&b={value}"
    ours = twiml.connect_stream(STREAM_URL, action, {"tenant_id": value, value or "x": "v"})
    assert ours == twilio_connect(STREAM_URL, action, {"tenant_id": value, value or "x": "v"})
    connect = ET.fromstring(ours.removeprefix(twiml.DECLARATION))[0]
    assert [e.tag for e in connect.iter()] == ["Connect", "Stream", "Parameter", "Parameter"]
    assert connect.get("action") == action
    assert connect[0][0].attrib == {"name": "tenant_id", "value": value}


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_text_in_a_dial_or_a_redirect_is_escaped_as_twilio_escapes_it(value):
    assert twiml.dial(value) == voice_response(Dial(value))
    response = VoiceResponse()
    response.redirect(value)
    assert twiml.redirect(value) == str(response)


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=40))
def test_any_text_is_twilios_or_refused_when_xml_cannot_carry_it(value):
    try:
        ours = twiml.connect_stream(STREAM_URL, ACTION_URL, {"tenant_id": value})
    except ValueError as exc:
        assert "holds a character XML cannot carry" in str(exc)
        assert twiml._NOT_XML.search(value)
        return
    assert ours == twilio_connect(STREAM_URL, ACTION_URL, {"tenant_id": value})
    parameter = ET.fromstring(ours.removeprefix(twiml.DECLARATION))[0][0][0]
    assert parameter.get("value") == value


@pytest.mark.parametrize("bad", UNCARRIABLE)
def test_a_character_xml_cannot_carry_is_refused_naming_the_value(bad):
    with pytest.raises(ValueError, match="TwiML parameter 'tenant_id' holds a character"):
        twiml.connect_stream(STREAM_URL, ACTION_URL, {"tenant_id": f"acme{bad}"})
    with pytest.raises(ValueError, match="TwiML url holds"):
        twiml.redirect(f"https://x/{bad}")
    with pytest.raises(ValueError, match="TwiML to holds"):
        twiml.dial(f"+1555{bad}")


def test_a_value_that_is_not_a_string_is_a_type_error():
    with pytest.raises(TypeError, match="TwiML parameter 'tenant_id' must be a str, not int"):
        twiml.connect_stream(STREAM_URL, ACTION_URL, {"tenant_id": 42})  # type: ignore[dict-item]


def test_hangup_is_twilios():
    response = VoiceResponse()
    response.hangup()
    assert twiml.hangup() == str(response)
    assert twiml.hangup() == '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>'


def test_dial_a_number_is_twilios():
    assert twiml.dial("+15551234567") == voice_response(Dial("+15551234567"))
    assert twiml.dial("+15551234567", "+15557654321") == voice_response(
        Dial("+15551234567", caller_id="+15557654321")
    )


def test_dial_a_sip_uri_is_a_sip_noun_as_twilio_writes_it():
    uri = "sip:desk@pbx.example.com;transport=tls"
    for caller_id in (None, "+15557654321"):
        dial = Dial(caller_id=caller_id)
        dial.sip(uri)
        assert twiml.dial(uri, caller_id) == voice_response(dial)
    assert "<Dial><Sip>sip:desk@pbx.example.com;transport=tls</Sip></Dial>" in twiml.dial(uri)


def test_redirect_is_twilios():
    url = "https://voice.example.com/twilio/voice?reconnect=1"
    response = VoiceResponse()
    response.redirect(url)
    assert twiml.redirect(url) == str(response)
