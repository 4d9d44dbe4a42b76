"""How each call is to end, kept in Django's cache (VOICEFLOW_CALL_CONTROL_CACHE) by CallSid.

The process that holds a call's stream records the decision, then closes the stream; Twilio
then asks `/twilio/voice/after` what comes next, and whichever process it reaches reads the
decision here. With several processes the cache must be shared by them (Redis): a per-process
cache answers "no decision" everywhere but where it was made.
"""

from __future__ import annotations

from django.core.cache import caches

from . import conf
from .layer_messages import CallHangup, CallTransfer, parse_layer_message
from .wait import group_name

# Longer than any call: Twilio ends a call at 4 hours unless the account's limit is raised.
# The decision is read seconds after it is made; a day of it costs Redis a few bytes a call.
TTL_SECONDS = 24 * 3600

CallEnd = CallHangup | CallTransfer


class BadInstruction(ValueError):
    """What the cache holds for a call is not a decision of ours (another version, tampering)."""


async def arecord_hangup(call_sid: str) -> None:
    """The call is to hang up when its stream ends. Raises what the cache raises (Redis
    down): the decision is then not recorded."""
    await _arecord(call_sid, {"type": "voiceflow.call.hangup"})


async def arecord_transfer(call_sid: str, to: str) -> None:
    """The call is to be transferred to `to` when its stream ends (checked against the
    allowlist by whoever asked, and again when the `<Dial>` is answered). Raises what the cache
    raises."""
    await _arecord(call_sid, {"type": "voiceflow.call.transfer", "to": to})


async def aread_end(call_sid: str) -> CallEnd | None:
    """The call's recorded end, or None when nothing was recorded. BadInstruction for a value
    that is not one; whatever the cache raises when it fails."""
    value = await caches[conf.call_control_cache()].aget(_key(call_sid))
    if value is None:
        return None
    try:
        end = parse_layer_message(value)
    except ValueError as exc:
        raise BadInstruction(f"the cache holds no call end for {call_sid}: {exc}") from None
    if not isinstance(end, CallEnd):
        raise BadInstruction(f"the cache holds a {end.type} for {call_sid}, not a call end")
    return end


async def _arecord(call_sid: str, end: dict[str, str]) -> None:
    await caches[conf.call_control_cache()].aset(_key(call_sid), end, TTL_SECONDS)


def _key(call_sid: str) -> str:
    return group_name(call_sid) + ".end"
