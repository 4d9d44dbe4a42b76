"""Peer (e) of the bridge benchmark: the samples' bridge between Twilio and OpenAI's Realtime API.

What twilio-samples/speech-assistant-openai-realtime-api-python (main.py, GA interface) does on
its `/media-stream` websocket, rewritten here behaviour for behaviour, bugs included: its own
`websockets.connect` to the Realtime URL with an Authorization header (the library's defaults:
permessage-deflate offered, keepalive pings); a GA `session.update` (`audio/pcmu` both ways,
`server_vad`); every media frame `json.loads`-ed and forwarded as an `input_audio_buffer.append`
built with `json.dumps`; every `response.output_audio.delta` decoded, re-encoded and sent as
one `media` with `send_json`, then a `responsePart` mark; any mark from Twilio pops its queue;
on `input_audio_buffer.speech_started`, if marks are pending, a truncate at the caller's media
timestamps elapsed since the item's first delta, then a `clear`; and every event of its log list
printed whole to stdout.

Its bugs, kept: `start` resets the response timestamp and item in locals of the receiving task,
not in the call's state; `iter_text` swallows the disconnect, so its `except
WebSocketDisconnect` never runs and the Realtime session stays open after Twilio hangs up, until
the server closes it or a delta finds the Twilio socket gone; the truncate's `audio_end_ms` is
wall time on the caller's clock, not audio heard or generated.

For the benchmark only: the URL comes from OPENAI_BASE_URL (the sample's is api.openai.com's),
the path is /twilio/stream, the sample's optional greeting is on (ours greets), its TwiML
webhook is left out, and after Twilio's `stop` it logs `samples call ended (stop) callSid=...
frames=N` to stderr (N: the frames it forwarded) and closes, as every benchmark server does.
With SAMPLES_BRIDGE_DEFLATE=0 (the variant e0) its client offers no permessage-deflate.

    python -m benchmarks.samples_bridge -b 127.0.0.1 -p PORT
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from typing import Any

import websockets
from fastapi import FastAPI, WebSocket
from fastapi.websockets import WebSocketDisconnect

from voiceflow_channels.server import serve

OPENAI_API_KEY = os.environ["OPENAI_API_KEY"]
TEMPERATURE = float(os.getenv("TEMPERATURE", "0.8"))
VOICE = "alloy"
# The benchmark's variant (e0): without permessage-deflate, which the sample's websockets client
# offers by default and the fake accepts (the openai SDK turns it off).
COMPRESSION = None if os.getenv("SAMPLES_BRIDGE_DEFLATE") == "0" else "deflate"
SYSTEM_MESSAGE = "You are a helpful and bubbly AI assistant on a phone call."
GREETING = "Greet the caller and ask how you can help."
# The events the sample prints whole as they arrive.
LOG_EVENT_TYPES = (
    "error",
    "response.content.done",
    "rate_limits.updated",
    "response.done",
    "input_audio_buffer.committed",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.speech_started",
    "session.created",
    "session.updated",
)


def realtime_url() -> str:
    """The sample's Realtime URL, on OPENAI_BASE_URL's host (http://host:port/v1 -> ws://...)."""
    base = os.getenv("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
    base = "ws" + base.removeprefix("http")
    return f"{base}/realtime?model=gpt-realtime&temperature={TEMPERATURE}&voice={VOICE}"


app = FastAPI()


@app.websocket("/twilio/stream")
async def handle_media_stream(websocket: WebSocket) -> None:
    """One call: Twilio's frames up to the model, the model's audio back, barge-in cleared."""
    print("Client connected")
    await websocket.accept()
    async with websockets.connect(
        realtime_url(),
        additional_headers={"Authorization": f"Bearer {OPENAI_API_KEY}"},
        compression=COMPRESSION,
    ) as openai_ws:
        await initialize_session(openai_ws)
        stream_sid: str | None = None
        latest_media_timestamp = 0
        last_assistant_item: str | None = None
        mark_queue: list[str] = []
        response_start_timestamp_twilio: int | None = None
        call_sid = "-"  # the benchmark's
        frames = 0  # the benchmark's

        async def receive_from_twilio() -> None:
            nonlocal stream_sid, latest_media_timestamp, call_sid, frames
            try:
                async for message in websocket.iter_text():
                    data = json.loads(message)
                    if data["event"] == "media" and openai_ws.state.name == "OPEN":
                        latest_media_timestamp = int(data["media"]["timestamp"])
                        append = {
                            "type": "input_audio_buffer.append",
                            "audio": data["media"]["payload"],
                        }
                        await openai_ws.send(json.dumps(append))
                        frames += 1
                    elif data["event"] == "start":
                        stream_sid = data["start"]["streamSid"]
                        call_sid = data["start"]["callSid"]
                        print(f"Incoming stream has started {stream_sid}")
                        # The sample's: locals of this task (no nonlocal), so they reset nothing.
                        response_start_timestamp_twilio = None  # noqa: F841
                        latest_media_timestamp = 0
                        last_assistant_item = None  # noqa: F841
                    elif data["event"] == "mark":
                        if mark_queue:
                            mark_queue.pop(0)
                    elif data["event"] == "stop":  # the benchmark's: Twilio hangs up after it
                        print(
                            f"samples call ended (stop) callSid={call_sid} frames={frames}",
                            file=sys.stderr,
                        )
                        await websocket.close()
                        return
            except WebSocketDisconnect:  # never raised: iter_text swallows it (the sample's bug)
                print("Client disconnected.")
                if openai_ws.state.name == "OPEN":
                    await openai_ws.close()

        async def send_to_twilio() -> None:
            nonlocal last_assistant_item, response_start_timestamp_twilio
            try:
                async for openai_message in openai_ws:
                    response = json.loads(openai_message)
                    if response["type"] in LOG_EVENT_TYPES:
                        print(f"Received event: {response['type']}", response)
                    if (
                        response.get("type") == "response.output_audio.delta"
                        and "delta" in response
                    ):
                        payload = base64.b64encode(base64.b64decode(response["delta"])).decode()
                        await websocket.send_json(
                            {
                                "event": "media",
                                "streamSid": stream_sid,
                                "media": {"payload": payload},
                            }
                        )
                        item_id = response.get("item_id")
                        if item_id and item_id != last_assistant_item:
                            response_start_timestamp_twilio = latest_media_timestamp
                            last_assistant_item = item_id
                        await send_mark()
                    if response.get("type") == "input_audio_buffer.speech_started":
                        print("Speech started detected.")
                        if last_assistant_item:
                            print(f"Interrupting response with id: {last_assistant_item}")
                            await handle_speech_started_event()
            except Exception as e:
                print(f"Error in send_to_twilio: {e}")

        async def handle_speech_started_event() -> None:
            nonlocal response_start_timestamp_twilio, last_assistant_item
            print("Handling speech started event.")
            if mark_queue and response_start_timestamp_twilio is not None:
                elapsed_time = latest_media_timestamp - response_start_timestamp_twilio
                if last_assistant_item:
                    truncate = {
                        "type": "conversation.item.truncate",
                        "item_id": last_assistant_item,
                        "content_index": 0,
                        "audio_end_ms": elapsed_time,
                    }
                    await openai_ws.send(json.dumps(truncate))
                await websocket.send_json({"event": "clear", "streamSid": stream_sid})
                mark_queue.clear()
                last_assistant_item = None
                response_start_timestamp_twilio = None

        async def send_mark() -> None:
            if stream_sid:
                mark = {"event": "mark", "streamSid": stream_sid, "mark": {"name": "responsePart"}}
                await websocket.send_json(mark)
                mark_queue.append("responsePart")

        await asyncio.gather(receive_from_twilio(), send_to_twilio())


async def initialize_session(openai_ws: Any) -> None:
    """The GA session the sample asks for, then its optional greeting ("AI speaks first")."""
    session_update = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "model": "gpt-realtime",
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {"type": "server_vad"},
                },
                "output": {"format": {"type": "audio/pcmu"}},
            },
            "instructions": SYSTEM_MESSAGE,
        },
    }
    print("Sending session update:", json.dumps(session_update))
    await openai_ws.send(json.dumps(session_update))
    await send_initial_conversation_item(openai_ws)


async def send_initial_conversation_item(openai_ws: Any) -> None:
    item = {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": GREETING}],
        },
    }
    await openai_ws.send(json.dumps(item))
    await openai_ws.send(json.dumps({"type": "response.create"}))


if __name__ == "__main__":
    serve("benchmarks.samples_bridge:app", ["--server", "uvicorn", *sys.argv[1:]])
