"""Start or end a call's wait from anywhere (a view, a Celery task, another process).

Each message goes through the Channels layer to the group of the call, so it reaches whichever
process holds the call's stream: every live stream of that `callSid`, and no other call.
"""

from __future__ import annotations

import re
from typing import Any

from asgiref.sync import async_to_sync
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured

from .layer_messages import clean_reason

GROUP_PREFIX = "voiceflow.call."
_CALL_SID_RE = re.compile(r"[A-Za-z0-9]{2,64}")


def group_name(call_sid: str) -> str:
    """The layer group of a call; Twilio's callSid is already within the group-name charset."""
    if not isinstance(call_sid, str) or not _CALL_SID_RE.fullmatch(call_sid):
        raise ValueError(
            f"call_sid must be 2-64 letters or digits (a Twilio CA...), not {call_sid!r}"
        )
    return GROUP_PREFIX + call_sid


async def astart(
    call_sid: str, reason: str = "thinking", alias: str = DEFAULT_CHANNEL_LAYER
) -> None:
    """Tell the call's stream(s) that the assistant started working on `reason`."""
    await send_to_call(
        call_sid, {"type": "voiceflow.wait.start", "reason": clean_reason(reason)}, alias
    )


async def aend(call_sid: str, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
    """Tell the call's stream(s) that the assistant is done."""
    await send_to_call(call_sid, {"type": "voiceflow.wait.end"}, alias)


start = async_to_sync(astart)
end = async_to_sync(aend)


async def send_to_call(
    call_sid: str, message: dict[str, Any], alias: str = DEFAULT_CHANNEL_LAYER
) -> None:
    """Send one layer message to every live stream of `call_sid`."""
    group = group_name(call_sid)
    layer = get_channel_layer(alias)
    if layer is None:
        raise ImproperlyConfigured(
            f"No channel layer {alias!r} in CHANNEL_LAYERS: messages to a call need one. Set "
            "CHANNEL_LAYERS (InMemoryChannelLayer for one process, channels_redis for several)."
        )
    await layer.group_send(group, message)
