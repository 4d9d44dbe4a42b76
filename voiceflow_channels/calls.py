"""End a call from anywhere (a view, a task, another process): hang up, or transfer it.

Like `wait` and `audio`, each message goes through the Channels layer to the call's group; the
call lets what is queued play to its end, then ends as asked. A transfer's destination is
checked here, in the sender's process, before anything is sent: an E.164 number or a `sip:` URI
on VOICEFLOW_TRANSFER_ALLOWLIST, else a ValueError and the call goes on.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels import DEFAULT_CHANNEL_LAYER

from . import conf
from .destinations import check_destination
from .wait import send_to_call


async def ahangup(call_sid: str, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
    """Hang up the call once what is queued has played."""
    await send_to_call(call_sid, {"type": "voiceflow.call.hangup"}, alias)


async def atransfer(call_sid: str, to: str, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
    """Transfer the call to `to` (an E.164 number or a `sip:` URI on
    VOICEFLOW_TRANSFER_ALLOWLIST) once what is queued has played."""
    destination = check_destination(to, conf.transfer_allowlist())
    await send_to_call(call_sid, {"type": "voiceflow.call.transfer", "to": destination}, alias)


hangup = async_to_sync(ahangup)
transfer = async_to_sync(atransfer)
