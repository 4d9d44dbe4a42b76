"""A FastAPI app with Twilio's stream beside routes of its own, Django configured in code and no
Django project: the README's "In a FastAPI or Starlette app", plus what the test checks (a route,
a startup, Django's views at /ops). tests/test_mount.py serves it under the launcher's uvicorn."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["channels", "voiceflow_channels"],
    CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
    VOZ_FEATURE_VOICE_FLOW_A=os.environ.get("VOZ_FEATURE_VOICE_FLOW_A", "0"),
    TWILIO_AUTH_TOKEN=os.environ.get("TWILIO_AUTH_TOKEN", ""),
    VOICEFLOW_PUBLIC_URL=os.environ.get("VOICEFLOW_PUBLIC_URL", ""),
    # For /healthz, /readyz and /metrics, Django views, served under /ops below.
    ROOT_URLCONF="voiceflow_channels.urls",
    ALLOWED_HOSTS=["127.0.0.1"],
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from voiceflow_channels.routing import build_router  # noqa: E402

log = logging.getLogger("fastapi_app")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    log.info("fastapi_app startup ran")
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "from FastAPI"}


app.router.add_websocket_route("/twilio/stream", build_router())
app.mount("/ops", get_asgi_application())
