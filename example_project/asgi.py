"""The example ASGI app: Django for HTTP, the voiceflow router for websockets, serving the model
assistant (example_project/assistant.py) when OPENAI_API_KEY is set, else the demo with no AI."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

# Sets Django up before the router is imported; the admin's CSS and JS served from the apps
# themselves, as runserver does (a production site serves `collectstatic`'s output instead).
django_http = ASGIStaticFilesHandler(get_asgi_application())

from channels.routing import ProtocolTypeRouter  # noqa: E402

from voiceflow_channels.routing import build_router  # noqa: E402

if os.environ.get("OPENAI_API_KEY"):
    from example_project.assistant import ShopAssistant

    websocket = build_router(assistant=ShopAssistant)
else:
    from example_project.demo import DemoConsumer

    websocket = build_router(consumer=DemoConsumer)

application = ProtocolTypeRouter({"http": django_http, "websocket": websocket})
