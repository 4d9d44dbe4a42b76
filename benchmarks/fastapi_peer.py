"""Peer (e): the websocket endpoint of Twilio's and OpenAI's Media Streams samples, in FastAPI.

python -m benchmarks.fastapi_peer -b 127.0.0.1 -p PORT serves it under uvicorn with the same
settings as ours (`voiceflow_channels.server --server uvicorn`). The samples' shape: `iter_text`,
`json.loads` per message, `base64.b64decode` of each media payload; one `fastapi call ended
(stop) callSid=... frames=N` line per call on stderr after its stop, then it closes.
"""

from __future__ import annotations

import base64
import json
import sys

from fastapi import FastAPI, WebSocket

from voiceflow_channels.server import serve

app = FastAPI()


@app.websocket("/twilio/stream")
async def media_stream(websocket: WebSocket) -> None:
    """Count one call's media frames until `stop`, then report them and close."""
    await websocket.accept()
    call_sid = "-"
    frames = 0
    async for message in websocket.iter_text():
        data = json.loads(message)
        event = data["event"]
        if event == "media":
            base64.b64decode(data["media"]["payload"])
            frames += 1
        elif event == "start":
            call_sid = data["start"]["callSid"]
        elif event == "stop":
            print(f"fastapi call ended (stop) callSid={call_sid} frames={frames}", file=sys.stderr)
            await websocket.close()
            return


if __name__ == "__main__":
    serve("benchmarks.fastapi_peer:app", ["--server", "uvicorn", *sys.argv[1:]])
