"""The floor of the bridge benchmark (du): the least a Twilio-to-Realtime bridge can do per
message, as a bare ASGI app under the same uvicorn as ours and the samples' bridge.

python -m benchmarks.bare_bridge -b 127.0.0.1 -p PORT. No framework and no JSON on the audio:
a media frame's payload is cut out of the text and sent as an `input_audio_buffer.append`; a
`response.output_audio.delta`'s audio is cut out and sent as one `media`; any
`input_audio_buffer.speech_started` sends a `clear` (no books: nothing is truncated). Only
Twilio's `start` is decoded. Its model connection is the SDK's shape (no compression), its
session the GA one (`audio/pcmu`, `server_vad`), and it asks for a greeting as ours does. One
`bare call ended (stop) callSid=... frames=N` line per call on stderr, then it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

import websockets

from voiceflow_channels.server import serve

# The simulator's frames start with their event (json.dumps keeps key order), as in bare_asgi.
MEDIA = '{"event": "media"'
START = '{"event": "start"'
STOP = '{"event": "stop"'
PAYLOAD = '"payload": "'
# The fake's events are compact JSON (pydantic's).
DELTA_EVENT = '"type":"response.output_audio.delta"'
SPEECH_STARTED = '"type":"input_audio_buffer.speech_started"'
DELTA = '"delta":"'
APPEND_HEAD = '{"type":"input_audio_buffer.append","audio":"'
SESSION = json.dumps(
    {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {"type": "server_vad"},
                },
                "output": {"format": {"type": "audio/pcmu"}},
            },
        },
    }
)
GREET = json.dumps({"type": "response.create"})


def realtime_url() -> str:
    base = os.environ["OPENAI_BASE_URL"].rstrip("/")
    return "ws" + base.removeprefix("http") + "/realtime?model=gpt-realtime"


def _cut(text: str, key: str) -> str:
    """The string value that follows `key` (which ends with its opening quote)."""
    start = text.index(key) + len(key)
    return text[start : text.index('"', start)]


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """One call: Twilio's frames to the model and its audio back, until `stop`."""
    if scope["type"] != "websocket" or (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    headers = {"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"}
    async with websockets.connect(
        realtime_url(), additional_headers=headers, compression=None, max_size=None
    ) as model:
        await model.send(SESSION)
        await model.send(GREET)
        # The stream's outbound messages, around the audio, once `start` names the stream.
        heads: list[str] = []
        speaking = asyncio.create_task(_from_model(model, send, heads))
        call_sid = "-"
        frames = 0
        try:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return
                text = message.get("text") or ""
                if text.startswith(MEDIA):
                    await model.send(APPEND_HEAD + _cut(text, PAYLOAD) + '"}')
                    frames += 1
                elif text.startswith(START):
                    start = json.loads(text)["start"]
                    call_sid, sid = start["callSid"], start["streamSid"]
                    heads[:] = [
                        f'{{"event":"media","streamSid":"{sid}","media":{{"payload":"',
                        json.dumps({"event": "clear", "streamSid": sid}),
                    ]
                elif text.startswith(STOP):
                    print(
                        f"bare call ended (stop) callSid={call_sid} frames={frames}",
                        file=sys.stderr,
                    )
                    await send({"type": "websocket.close"})
                    return
        finally:
            speaking.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await speaking


async def _from_model(model: websockets.ClientConnection, send: Any, heads: list[str]) -> None:
    async for text in model:
        if not heads or not isinstance(text, str):
            continue
        if DELTA_EVENT in text:
            await send({"type": "websocket.send", "text": heads[0] + _cut(text, DELTA) + '"}}'})
        elif SPEECH_STARTED in text:
            await send({"type": "websocket.send", "text": heads[1]})


if __name__ == "__main__":
    serve("benchmarks.bare_bridge:application", ["--server", "uvicorn", *sys.argv[1:]])
