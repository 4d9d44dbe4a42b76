"""Peer (t) of the bridge benchmark: Twilio's own framework, twilio-agent-connect (`tac`), its
`OpenAIRealtimeProvider` bridging Media Streams to OpenAI Realtime, served as its README serves
it: `TACFastAPIServer(tac=..., voice_channel=...).start()` (its FastAPI app under uvicorn.run).

Nothing of tac is changed but where its model connects: the provider opens its Realtime socket
with `websockets.connect("wss://api.openai.com/v1/realtime?model=...")`, hard-coded, so the
provider module's `websockets` name is given a `connect` that swaps that base for the fake's
(OPENAI_BASE_URL) and otherwise passes every argument on to websockets' own. Its connection is
websockets' own too, with one addition, a count of the `input_audio_buffer.append` messages it
sends: the frames the call forwarded. In this mode (no conversation configuration, inbound
calls) tac makes no Twilio REST call at a call's start or end, so none is stubbed; its usage
telemetry (Segment, on by default) is turned off with its own TAC_ANALYTICS_DISABLED, as no
traffic leaves the machine.

What the user's code sets: the session (the samples' GA one: `audio/pcmu` both ways,
`server_vad`), a greeting (ours greets), the websocket path (/twilio/stream, the benchmark's),
the host and port, and the Twilio credentials it reads (placeholders; its websocket route checks
the stream's X-Twilio-Signature against servers.TWILIO_TOKEN, which the benchmark's
simulator signs with as Twilio would). After each call it logs `tac call ended (stop) callSid=...
frames=N` to stderr from tac's own `on_conversation_ended` hook.

    python -m benchmarks.tac_bridge -b 127.0.0.1 -p PORT
"""

from __future__ import annotations

import argparse
import contextvars
import os
import sys
import types
from typing import Any

import websockets
from tac import TAC, TACConfig
from tac.channels.voice import VoiceChannel
from tac.channels.voice.media_streams.openai_realtime import (
    TWILIO_AUDIO_FORMAT_FOR_REALTIME,
    OpenAIRealtimeProviderConfig,
)
from tac.channels.voice.media_streams.openai_realtime import provider as tac_provider
from tac.models.session import ConversationSession
from tac.server import TACFastAPIServer, TACServerConfig
from websockets.asyncio.client import ClientConnection

from benchmarks.servers import TWILIO_TOKEN

OPENAI_URL = "wss://api.openai.com/v1"
APPEND = '{"type": "input_audio_buffer.append"'  # as tac's json.dumps writes it
SESSION = {
    "type": "realtime",
    "model": "gpt-realtime",
    "output_modalities": ["audio"],
    "audio": {
        "input": {
            "format": TWILIO_AUDIO_FORMAT_FOR_REALTIME,
            "turn_detection": {"type": "server_vad"},
        },
        "output": {"format": TWILIO_AUDIO_FORMAT_FOR_REALTIME},
    },
    "instructions": "You are a helpful and bubbly AI assistant on a phone call.",
}
GREETING = {"instructions": "Greet the caller and ask how you can help."}


class CountingConnection(ClientConnection):
    """websockets' own client connection, counting the appends it sends."""

    appends = 0

    async def send(self, message: Any, *, text: bool | None = None) -> None:
        if isinstance(message, str) and message.startswith(APPEND):
            self.appends += 1
        await super().send(message, text=text)


# The call's model connection, set in the websocket endpoint's task and read by the end hook
# that tac awaits in that same task.
model_connection: contextvars.ContextVar[CountingConnection] = contextvars.ContextVar("model")


async def connect(uri: str, **kwargs: Any) -> CountingConnection:
    """websockets.connect, at the fake instead of api.openai.com."""
    base = os.environ["OPENAI_BASE_URL"].replace("http", "ws", 1)
    ws = await websockets.connect(
        uri.replace(OPENAI_URL, base, 1), create_connection=CountingConnection, **kwargs
    )
    model_connection.set(ws)
    return ws


async def call_ended(session: ConversationSession) -> None:
    frames = model_connection.get().appends
    print(f"tac call ended (stop) callSid={session.call_sid} frames={frames}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tac_bridge")
    parser.add_argument("-b", "--bind", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ["TAC_ANALYTICS_DISABLED"] = "true"
    tac_provider.websockets = types.SimpleNamespace(connect=connect)  # type: ignore[attr-defined]
    tac = TAC(
        config=TACConfig(
            account_sid="AC" + "0" * 32,
            auth_token=TWILIO_TOKEN,
            api_key="SK" + "0" * 32,
            api_secret="bench",
            phone_number="+15550000000",
            voice_public_domain=f"{args.bind}:{args.port}",
            voice_websocket_path="/twilio/stream",
        )
    )
    tac.on_conversation_ended(call_ended)
    voice_channel = VoiceChannel(
        tac,
        config=OpenAIRealtimeProviderConfig(
            openai_api_key=os.environ["OPENAI_API_KEY"],
            default_session_config=SESSION,
            welcome_greeting_response=GREETING,
        ),
    )
    TACFastAPIServer(
        tac=tac,
        voice_channel=voice_channel,
        config=TACServerConfig(host=args.bind, port=args.port),
    ).start()


if __name__ == "__main__":
    main()
