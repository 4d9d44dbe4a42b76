"""Whether a websocket upgrade is let in: Twilio's signature over the public URL, and the
refusal a busy or draining process answers."""

from __future__ import annotations

from asgiref.typing import (
    ASGISendCallable,
    WebSocketResponseBodyEvent,
    WebSocketResponseStartEvent,
    WebSocketScope,
)

from . import conf
from .signature import header_signature, is_valid_signature


def signature_refusal(scope: WebSocketScope) -> str | None:
    """Why the upgrade is not Twilio's, or None: with TWILIO_AUTH_TOKEN set, it must carry
    X-Twilio-Signature for VOICEFLOW_PUBLIC_URL plus its path (never the Host header)."""
    token = conf.twilio_auth_token()
    if not token:
        return None
    signature = header_signature(scope.get("headers", []))
    if signature is None:
        return "missing X-Twilio-Signature"
    url = conf.public_url() + scope.get("path", "")
    if not is_valid_signature(token, url, signature):
        return f"X-Twilio-Signature does not match {url}"
    return None


async def deny_with_503(scope: WebSocketScope, send: ASGISendCallable) -> bool:
    """Refuse the upgrade with a 503 where the server can say so (the ASGI websocket denial
    response extension, e.g. uvicorn); False where it cannot (daphne)."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        return False
    start: WebSocketResponseStartEvent = {
        "type": "websocket.http.response.start",
        "status": 503,
        "headers": [],
    }
    body: WebSocketResponseBodyEvent = {
        "type": "websocket.http.response.body",
        "body": b"busy\n",
        "more_body": False,
    }
    await send(start)
    await send(body)
    return True
