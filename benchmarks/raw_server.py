"""Server (c): a bare `websockets` server doing the naive parse, the ceiling without daphne.

python -m benchmarks.raw_server PORT. Per message: json.loads, and base64 of each media payload;
one `raw call ended (stop) callSid=... frames=N` line per call on stderr, then it closes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys

from websockets.asyncio.server import ServerConnection, serve

MAX_MESSAGE_BYTES = 64 * 1024  # the same bound the example project gives daphne


async def handle(ws: ServerConnection) -> None:
    """Count one call's media frames until `stop`, then report them and close."""
    call_sid = "-"
    frames = 0
    async for message in ws:
        event = json.loads(message)
        kind = event.get("event")
        if kind == "media":
            base64.b64decode(event["media"]["payload"])
            frames += 1
        elif kind == "start":
            call_sid = event["start"]["callSid"]
        elif kind == "stop":
            print(f"raw call ended (stop) callSid={call_sid} frames={frames}", file=sys.stderr)
            await ws.close()
            return


async def main(port: int) -> None:
    async with serve(
        handle, "127.0.0.1", port, compression=None, ping_interval=None, max_size=MAX_MESSAGE_BYTES
    ) as server:
        print(f"Listening on TCP address 127.0.0.1:{port}", file=sys.stderr, flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
