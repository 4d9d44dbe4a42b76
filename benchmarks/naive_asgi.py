"""Server (b): the naive Channels consumer, mounted as the example project mounts ours.

python -m benchmarks.naive_asgi -b 127.0.0.1 -p PORT serves it under daphne with the example
project's flags. Channels' defaults throughout: `receive_json` (json.loads), the default dispatch
(close_old_connections per message) and `await_many_dispatch` over the socket and the layer.
"""

from __future__ import annotations

import base64
import os
import sys
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

import django

django.setup()  # the consumer's default dispatch touches Django's DB connections

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from voiceflow_channels.server import serve  # noqa: E402


class NaiveStreamConsumer(AsyncJsonWebsocketConsumer):
    """Decodes every event, base64-decodes media payloads and counts them; closes after stop."""

    async def connect(self) -> None:
        self.call_sid = "-"
        self.frames = 0
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        event = content.get("event")
        if event == "media":
            base64.b64decode(content["media"]["payload"])
            self.frames += 1
        elif event == "start":
            self.call_sid = content["start"]["callSid"]
        elif event == "stop":
            print(
                f"naive call ended (stop) callSid={self.call_sid} frames={self.frames}",
                file=sys.stderr,
            )
            await self.close()


application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("twilio/stream", NaiveStreamConsumer.as_asgi())])}
)

if __name__ == "__main__":
    serve("benchmarks.naive_asgi:application", sys.argv[1:])
