"""calls.hangup / calls.transfer from anywhere: what reaches the call's group on the layer, and
what never does (a destination off the allowlist is refused in the sender's process)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from voiceflow_channels import call_control, calls, conf, wait
from voiceflow_channels.layer_messages import CallHangup, CallTransfer, parse_layer_message

CALL_SID = "CA" + "fedcba9876543210" * 2
ALLOWED = "+15557654321"
pytestmark = pytest.mark.usefixtures("fresh_cache")


@pytest.fixture
def allowlist(settings):
    settings.VOICEFLOW_TRANSFER_ALLOWLIST = [ALLOWED, "sip:*@pbx.example.com"]
    return settings


async def listen(call_sid: str = CALL_SID) -> str:
    """A channel in the call's group, as the call's stream joins it."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(wait.group_name(call_sid), channel)
    return channel


async def received(channel: str) -> dict | None:
    """The next message on `channel`, or None when nothing came."""
    try:
        return await asyncio.wait_for(get_channel_layer().receive(channel), 0.1)
    except TimeoutError:
        return None


async def test_an_allowed_transfer_reaches_the_call_as_a_message_it_accepts(allowlist):
    channel = await listen()
    for to in (ALLOWED, "sip:desk@pbx.example.com"):
        await calls.atransfer(CALL_SID, to)
        message = parse_layer_message(await received(channel))
        assert message == CallTransfer(type="voiceflow.call.transfer", to=to)
    assert await received(channel) is None


async def test_a_hangup_reaches_the_call(allowlist):
    channel = await listen()
    await calls.ahangup(CALL_SID)
    assert parse_layer_message(await received(channel)) == CallHangup(type="voiceflow.call.hangup")


@pytest.mark.parametrize(
    ("to", "error", "match"),
    [
        ("+19005550100", ValueError, "not on VOICEFLOW_TRANSFER_ALLOWLIST"),  # premium
        ("+15557654322", ValueError, "not on VOICEFLOW_TRANSFER_ALLOWLIST"),
        ("sip:desk@evil.example.com", ValueError, "not on VOICEFLOW_TRANSFER_ALLOWLIST"),
        ("+1 555 765 4321", ValueError, "neither an E.164 number"),
        ("sip:desk@pbx.example.com?X-Evil=1", ValueError, "neither an E.164 number"),
        (15557654321, TypeError, "must be a str, not int"),
        (None, TypeError, "must be a str, not NoneType"),
    ],
)
async def test_a_refused_transfer_raises_before_anything_is_sent(allowlist, to, error, match):
    channel = await listen()
    with pytest.raises(error, match=match):
        await calls.atransfer(CALL_SID, to)
    assert await received(channel) is None, "nothing reached the call: it goes on"


async def test_with_no_allowlist_no_transfer_is_sent(settings):
    settings.VOICEFLOW_TRANSFER_ALLOWLIST = []
    channel = await listen()
    with pytest.raises(ValueError, match="not on VOICEFLOW_TRANSFER_ALLOWLIST"):
        await calls.atransfer(CALL_SID, ALLOWED)
    assert await received(channel) is None


@pytest.mark.parametrize("call_sid", ["", "CA 1", "x" * 65, None])
async def test_a_bad_call_sid_raises_before_anything_is_sent(allowlist, call_sid):
    channel = await listen()
    with pytest.raises(ValueError, match="call_sid must be"):
        await calls.atransfer(call_sid, ALLOWED)
    with pytest.raises(ValueError, match="call_sid must be"):
        await calls.ahangup(call_sid)
    assert await received(channel) is None


def test_the_sync_twins_send_the_same_messages(allowlist):
    channel = async_to_sync(listen)()
    calls.transfer(CALL_SID, ALLOWED)
    calls.hangup(CALL_SID)
    with pytest.raises(ValueError, match="not on VOICEFLOW_TRANSFER_ALLOWLIST"):
        calls.transfer(CALL_SID, "+19005550100")
    types = [async_to_sync(received)(channel)["type"] for _ in range(2)]
    assert types == ["voiceflow.call.transfer", "voiceflow.call.hangup"]
    assert async_to_sync(received)(channel) is None


def test_the_allowlist_is_read_from_a_list_or_a_comma_separated_env_string(settings, monkeypatch):
    settings.VOICEFLOW_TRANSFER_ALLOWLIST = " +15557654321 , sip:*@pbx.example.com,,"
    assert conf.transfer_allowlist() == (ALLOWED, "sip:*@pbx.example.com")
    settings.VOICEFLOW_TRANSFER_ALLOWLIST = (ALLOWED,)
    assert conf.transfer_allowlist() == (ALLOWED,)
    del settings.VOICEFLOW_TRANSFER_ALLOWLIST
    monkeypatch.setenv("VOICEFLOW_TRANSFER_ALLOWLIST", "+15557654321,+15550002222")
    assert conf.transfer_allowlist() == (ALLOWED, "+15550002222")
    monkeypatch.delenv("VOICEFLOW_TRANSFER_ALLOWLIST")
    assert conf.transfer_allowlist() == ()


@pytest.mark.parametrize(
    "message",
    [
        {"type": "voiceflow.call.transfer"},
        {"type": "voiceflow.call.transfer", "to": ""},
        {"type": "voiceflow.call.transfer", "to": "+1 900"},
        {"type": "voiceflow.call.transfer", "to": "sip:" + "a" * 300 + "@x.com"},
        {"type": "voiceflow.call.transfer", "to": b"+15557654321"},
        {"type": "voiceflow.call.hangupx"},
    ],
)
def test_a_transfer_message_from_the_layer_is_validated_and_its_number_never_echoed(message):
    with pytest.raises(ValueError) as refused:
        parse_layer_message(message)
    assert "900" not in str(refused.value) and "+1555" not in str(refused.value)


async def test_the_recorded_end_is_read_back_by_call_sid(settings):
    other = "CA" + "1" * 32
    await call_control.arecord_transfer(CALL_SID, ALLOWED)
    await call_control.arecord_hangup(other)
    assert await call_control.aread_end(CALL_SID) == CallTransfer(
        type="voiceflow.call.transfer", to=ALLOWED
    )
    assert await call_control.aread_end(other) == CallHangup(type="voiceflow.call.hangup")
    assert await call_control.aread_end("CA" + "2" * 32) is None


async def test_the_recorded_end_lives_in_the_configured_cache_longer_than_any_call(settings):
    from django.core.cache import caches

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "d"},
        "calls": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "c"},
    }
    settings.VOICEFLOW_CALL_CONTROL_CACHE = "calls"
    await call_control.arecord_hangup(CALL_SID)
    assert await caches["default"].aget(f"voiceflow.call.{CALL_SID}.end") is None
    assert await caches["calls"].aget(f"voiceflow.call.{CALL_SID}.end") is not None
    assert call_control.TTL_SECONDS > 4 * 3600  # Twilio ends calls at 4 h by default
