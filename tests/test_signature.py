"""X-Twilio-Signature: our HMAC against Twilio's own RequestValidator (upgrades and form POSTs),
and the consumer's door."""

from __future__ import annotations

import logging

import pytest
from channels.testing import WebsocketCommunicator
from django.http import QueryDict
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from tests.utils import STREAM, expect_server_close, metric, open_stream, send_all
from voiceflow_channels.routing import build_router
from voiceflow_channels.signature import (
    compute_form_signature,
    compute_signature,
    header_signature,
    is_valid_form_signature,
    is_valid_signature,
    url_variants,
)
from voiceflow_channels.testing import SimulatedCall

TOKEN = "12345678901234567890123456789012"
PUBLIC = "wss://voice.example.com"
URL = PUBLIC + STREAM


@settings(max_examples=300, deadline=None)
@given(
    token=st.text(min_size=1, max_size=40),
    host=st.from_regex(r"[a-z]{1,12}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    path=st.from_regex(r"(/[a-z0-9_-]{1,10}){1,3}", fullmatch=True),
)
def test_our_signature_is_twilios(token, host, path):
    url = f"wss://{host}{path}"
    ours = compute_signature(token, url)
    assert ours == RequestValidator(token).compute_signature(url, {})
    assert RequestValidator(token).validate(url, {}, ours)
    assert is_valid_signature(token, url, ours)


@settings(max_examples=300, deadline=None)
@given(
    token=st.text(min_size=1, max_size=40),
    query=st.from_regex(
        r"(\?[a-z]{1,8}=[a-z0-9]{0,8}(&[a-z]{1,8}=[a-z0-9]{0,8}){0,2})?", fullmatch=True
    ),
    # A form as Twilio POSTs it: any names and values, a name possibly repeated.
    pairs=st.lists(st.tuples(st.text(max_size=12), st.text(max_size=24)), max_size=12),
)
def test_our_form_signature_is_twilios_repeated_names_and_unicode_included(token, query, pairs):
    url = f"https://voice.example.com/twilio/voice{query}"
    form = QueryDict(mutable=True)
    for name, value in pairs:
        form.appendlist(name, value)
    ours = compute_form_signature(token, url, dict(form.lists()))
    assert ours == RequestValidator(token).compute_signature(url, form)
    assert RequestValidator(token).validate(url, form, ours)
    assert is_valid_form_signature(token, url, dict(form.lists()), ours)


def test_a_form_signature_covers_every_parameter_and_the_query():
    url = "https://voice.example.com/twilio/voice"
    form = {"CallSid": "CA" + "0" * 32, "From": "+15551234567", "To": "+15550001111"}
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    assert is_valid_form_signature(TOKEN, url, form, signature)
    assert is_valid_form_signature(TOKEN, url.replace(".com", ".com:443"), form, signature)
    assert is_valid_form_signature(TOKEN, url, {k: [v] for k, v in form.items()}, signature)
    assert not is_valid_form_signature(TOKEN, url, {**form, "To": "+19005550100"}, signature)
    assert not is_valid_form_signature(TOKEN, url, {**form, "Extra": ""}, signature)
    assert not is_valid_form_signature(TOKEN, url + "?reconnect=1", form, signature)
    assert not is_valid_form_signature(TOKEN, url, {}, signature)
    assert not is_valid_form_signature("", url, form, signature)


def test_signed_with_or_without_the_port_both_pass():
    validator = RequestValidator(TOKEN)
    with_port = validator.compute_signature("wss://voice.example.com:443/twilio/stream", {})
    assert is_valid_signature(TOKEN, URL, with_port)
    assert is_valid_signature(
        TOKEN, "wss://voice.example.com:443/twilio/stream", compute_signature(TOKEN, URL)
    )
    assert url_variants("ws://[::1]:8000/x") == ("ws://[::1]/x", "ws://[::1]:8000/x")


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        b"",
        "garbage",
        compute_signature(TOKEN, PUBLIC + "/other"),
        compute_signature("wrong-token", URL),
        compute_signature(TOKEN, URL)[:-2],
        "é" * 28,
    ],
)
def test_wrong_signatures_fail(signature):
    assert not is_valid_signature(TOKEN, URL, signature)


def test_no_token_never_validates():
    assert not is_valid_signature("", URL, compute_signature("", URL))


def test_header_lookup_is_case_insensitive():
    assert header_signature([(b"X-Twilio-Signature", b"abc")]) == b"abc"
    assert header_signature([(b"host", b"x")]) is None


@pytest.fixture
def signed(flag_on):
    flag_on.TWILIO_AUTH_TOKEN = TOKEN
    flag_on.VOICEFLOW_PUBLIC_URL = PUBLIC
    return flag_on


async def test_valid_signature_is_accepted_whatever_the_host_header(signed, summaries):
    headers = [
        (b"host", b"10.0.0.7:8000"),
        (b"x-twilio-signature", compute_signature(TOKEN, URL).encode()),
    ]
    call = SimulatedCall()
    communicator = await open_stream(headers=headers)
    await send_all(communicator, [call.start(), call.media(), call.stop()])
    await expect_server_close(communicator)
    assert "frames=1" in summaries()[0]


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ([], "missing X-Twilio-Signature"),
        (
            [(b"x-twilio-signature", b"bm9wZQ==")],
            "X-Twilio-Signature does not match wss://voice.example.com/twilio/stream",
        ),
    ],
)
async def test_missing_or_wrong_signature_is_refused_before_accept(signed, caplog, headers, why):
    caplog.set_level(logging.INFO, logger="voiceflow_channels")
    before = metric("voiceflow_upgrades_refused_total", reason="signature")
    communicator = WebsocketCommunicator(build_router(), STREAM, headers)
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()
    assert metric("voiceflow_upgrades_refused_total", reason="signature") == before + 1
    messages = [r.getMessage() for r in caplog.records]
    assert f"voiceflow refused upgrade to /twilio/stream: {why}" in messages
    assert not any(TOKEN in m or "bm9wZQ" in m for m in messages), "no secret in the log"
    assert not any("call ended" in m for m in messages)
