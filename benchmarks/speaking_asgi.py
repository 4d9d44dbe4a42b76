"""Server (s): our consumer speaking to a share of the calls, for the bidirectional profile.

python -m benchmarks.speaking_asgi -b 127.0.0.1 -p PORT serves it under daphne with the example
project's flags. A call whose tenant_id is "speaker" hears audio for its whole life, queued as
an assistant streams it (1 s utterances, up to the queue bound); every other call only listens.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

from django.core.asgi import get_asgi_application

get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from voiceflow_channels import conf  # noqa: E402
from voiceflow_channels.consumers import TwilioStreamConsumer  # noqa: E402
from voiceflow_channels.routing import build_router  # noqa: E402
from voiceflow_channels.server import serve  # noqa: E402
from voiceflow_channels.twilio_events import StreamStart  # noqa: E402

SPEAKER = "speaker"
ONE_SECOND = bytes(range(256)) * 31 + bytes(64)  # 8,000 bytes: 1 s of mu-law, not silence


class SpeakingConsumer(TwilioStreamConsumer):
    async def on_start(self, start: StreamStart) -> None:
        if start.tenant_id == SPEAKER:
            for _ in range(conf.max_queued_audio_ms() // 1000):
                await self.play(ONE_SECOND, "speech")


application = ProtocolTypeRouter({"websocket": build_router(True, consumer=SpeakingConsumer)})

if __name__ == "__main__":
    serve("benchmarks.speaking_asgi:application", sys.argv[1:])
