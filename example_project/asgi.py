"""The example ASGI app: Django for HTTP, the voiceflow router (serving the demo assistant) for
websockets."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

from django.core.asgi import get_asgi_application

django_http = get_asgi_application()  # sets Django up before the router is imported

from channels.routing import ProtocolTypeRouter  # noqa: E402

from example_project.demo import DemoConsumer  # noqa: E402
from voiceflow_channels.routing import build_router  # noqa: E402

application = ProtocolTypeRouter(
    {"http": django_http, "websocket": build_router(consumer=DemoConsumer)}
)
