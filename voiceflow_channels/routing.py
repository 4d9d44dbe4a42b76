"""The ASGI app to mount: `/twilio/stream` when `VOZ_FEATURE_VOICE_FLOW_A` is on, else nothing.

    application = ProtocolTypeRouter({"websocket": build_router()})

The stream is at `stream_path()`: `/twilio/stream` under VOICEFLOW_STREAM_PREFIX, the path the
voice webhook's TwiML names and the signature covers. The router matches the request's whole
path, however it is mounted (an outer URLRouter, a Starlette Mount), so that the three agree.

Any websocket path the router does not serve (all of them with the flag off) is refused at the
handshake (daphne answers 403) with one quiet log line, instead of Channels' "No route found"
exception (a 500 and a traceback).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.typing import (
    ASGI3Application,
    ASGIReceiveCallable,
    ASGISendCallable,
    Scope,
    WebSocketCloseEvent,
)
from channels.routing import URLRouter
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, path, re_path

from . import conf
from .call_port import Assistant
from .checks import check_settings
from .consumers import TwilioStreamConsumer

log = logging.getLogger("voiceflow_channels")

STREAM_PATH = "twilio/stream"


def stream_path() -> str:
    """The path Twilio connects to: `/twilio/stream` under VOICEFLOW_STREAM_PREFIX."""
    return f"/{conf.stream_prefix()}{STREAM_PATH}"


# Channels ships no types: URLRouter is Any to mypy.
class _WholePathRouter(URLRouter):  # type: ignore[misc]
    """A URLRouter that routes on the request's whole path (`path`), not on what an outer router
    or a Mount left of it (`path_remaining`, `root_path`)."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        whole = {key: value for key, value in scope.items() if key != "path_remaining"}
        return await super().__call__({**whole, "root_path": ""}, receive, send)


def refuser(why: str) -> ASGI3Application:
    """An ASGI app that refuses a websocket upgrade before accepting it, logging `why`."""

    async def refuse(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "websocket":
            raise ValueError(f"voiceflow_channels routes websockets only, not {scope['type']!r}")
        await receive()
        log.info("voiceflow refused websocket %s: %s", scope.get("path"), why)
        # Before the accept, a close is a refusal of the handshake (daphne and uvicorn: 403).
        close: WebSocketCloseEvent = {"type": "websocket.close", "code": 1000, "reason": None}
        await send(close)

    return refuse


def websocket_urlpatterns(
    enabled: bool | None = None,
    consumer: type[TwilioStreamConsumer] = TwilioStreamConsumer,
    assistant: type[Assistant] | None = None,
) -> list[URLPattern]:
    """The app's routes, to add to a URLRouter of your own (the outermost one: the stream's
    route is its whole path without the leading slash): empty when the flag is off."""
    if not (isinstance(consumer, type) and issubclass(consumer, TwilioStreamConsumer)):
        raise TypeError(f"consumer must be a TwilioStreamConsumer subclass, not {consumer!r}")
    if assistant is not None and not _is_assistant(assistant):
        raise TypeError(
            f"assistant must be a class with the assistant's binding (attach, hear, "
            f"utterance_ended, detach, summary), e.g. a RealtimeAssistant subclass, not "
            f"{assistant!r}"
        )
    enabled = conf.voz_feature_voice_flow_a() if enabled is None else enabled
    app = consumer.as_asgi(assistant=assistant)
    return [path(stream_path().lstrip("/"), app)] if enabled else []


def build_router(
    enabled: bool | None = None,
    consumer: type[TwilioStreamConsumer] = TwilioStreamConsumer,
    assistant: type[Assistant] | None = None,
) -> URLRouter:
    """The flag-gated router serving each call's stream, at `stream_path()` whatever mounts it,
    with `consumer` (a `TwilioStreamConsumer` subclass, for code of your own) and, if given, a
    new `assistant` per call (e.g. a `RealtimeAssistant` subclass) bound to it. The flag is read
    now (None: from settings), so the route is there or absent for the life of the process:
    rollback is flag off and restart.

    Refuses to build when a voiceflow setting fails its system check, so a bad value stops the
    server at start rather than mid-call.
    """
    errors = [m for m in check_settings() if m.is_serious()]
    if errors:
        raise ImproperlyConfigured("\n".join(f"{e.id}: {e.msg} HINT: {e.hint}" for e in errors))
    patterns = websocket_urlpatterns(enabled, consumer, assistant)
    if patterns and not conf.twilio_auth_token():
        log.warning(
            "voiceflow: TWILIO_AUTH_TOKEN is not set, so %s accepts unsigned websocket upgrades."
            " Set TWILIO_AUTH_TOKEN and VOICEFLOW_PUBLIC_URL before exposing it.",
            stream_path(),
        )
    why = (
        f"no such route (the stream is at {stream_path()}: VOICEFLOW_STREAM_PREFIX)"
        if patterns
        else "no route (VOZ_FEATURE_VOICE_FLOW_A is off)"
    )
    # Channels' URLRouter routes ASGI apps; django-stubs types re_path's target as a view.
    return _WholePathRouter([*patterns, re_path(r"", refuser(why))])  # type: ignore[arg-type]


def _is_assistant(assistant: object) -> bool:
    binding = ("attach", "hear", "utterance_ended", "detach", "summary")
    return isinstance(assistant, type) and all(
        callable(getattr(assistant, name, None)) for name in binding
    )
