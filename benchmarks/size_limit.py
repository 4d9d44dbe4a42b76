"""Does a server enforce a websocket size limit before the app? One call sends a 1 MiB message.

A server with a limit ends the connection (1009, or drops it: 1006) and the app logs a call that
ended without its `stop`. One without hands the whole message to the app, which drops it as
oversize (VOICEFLOW_MAX_MESSAGE_BYTES) and logs the call's `stop`: a hostile peer can make such a
server buffer any message up to its own hard bound first. A server may also do neither: then the
connection hangs until the app's idle timeout ends the call.
"""

from __future__ import annotations

import asyncio
import re

from websockets.exceptions import ConnectionClosed

from voiceflow_channels.testing import SimulatedCall
from voiceflow_channels.testing.callsim import open_socket

from .servers import Server

OVERSIZE_BYTES = 1 << 20
CLOSE_SECONDS = 5  # for the connection to end after the stop
END_LINE_SECONDS = 30  # for the app's line: past its idle timeout (10 s in the example)


async def _send_oversize(url: str, call: SimulatedCall) -> int | None:
    """Play connected, start, the oversize message and stop; the close code the connection ended
    with, or None when it had not ended `CLOSE_SECONDS` later (the socket is then aborted)."""
    ws = await open_socket(url)
    try:
        await ws.send(call.connected())
        await ws.send(call.start())
        await ws.send("x" * OVERSIZE_BYTES)
        await ws.send(call.stop())
        async with asyncio.timeout(CLOSE_SECONDS):
            await ws.wait_closed()
    except ConnectionClosed:
        pass
    except TimeoutError:
        ws.transport.abort()
        return None
    return ws.close_code


def size_limit(server: Server, n: int) -> tuple[bool, str]:
    """Whether the server enforced a limit on a 1 MiB message sent on call number `n` (ours only:
    it logs how each call ended), and what happened."""
    call = SimulatedCall(n)
    since = len(server.lines)
    code = asyncio.run(_send_oversize(server.url, call))
    ended = rf"call ended \((.+?)\) callSid={call.call_sid}\b"
    server.wait_for(ended, 1, END_LINE_SECONDS, since)
    how = next(m[1] for line in server.lines[since:] if (m := re.search(ended, line)))
    if server.ended.pop(call.call_sid, None) is not None:
        return False, f"none: the 1 MiB message reached the app (closed {code} after the stop)"
    if code is None:
        return False, (
            f"broken: the message never reached the app, the connection was not closed within "
            f"{CLOSE_SECONDS} s, the app's call ended ({how})"
        )
    return True, f"enforced: the connection ended {code} before the app saw the message ({how})"
