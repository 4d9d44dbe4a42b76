"""Server (d), for context: the least an ASGI app under daphne can do per frame, its ceiling.

python -m benchmarks.bare_asgi -b 127.0.0.1 -p PORT. No Channels, no parse of media frames
(told apart by their first bytes); only `start` is decoded, for the callSid of the per-call line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from voiceflow_channels.server import serve

# The simulator's frames start with their event (json.dumps keeps key order).
MEDIA = '{"event": "media"'
STOP = '{"event": "stop"'
START = '{"event": "start"'


async def application(scope: dict, receive: Any, send: Any) -> None:
    """Count one call's media frames until `stop`, then report them and close."""
    if scope["type"] != "websocket":
        return
    call_sid = "-"
    frames = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind != "websocket.receive":
            return
        elif (text := message.get("text") or "").startswith(MEDIA):
            frames += 1
        elif text.startswith(START):
            call_sid = json.loads(text)["start"]["callSid"]
        elif text.startswith(STOP):
            print(f"bare call ended (stop) callSid={call_sid} frames={frames}", file=sys.stderr)
            await send({"type": "websocket.close"})


if __name__ == "__main__":
    serve("benchmarks.bare_asgi:application", sys.argv[1:])
