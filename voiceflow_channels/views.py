"""HTTP views for operations: `/healthz` (the process is up), `/readyz` (it takes calls), and
`/metrics`. Mount them with `path("", include("voiceflow_channels.urls"))`."""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponse
from django.utils.log import log_response

from . import metrics
from .streams import STREAMS

LAYER_PROBE_SECONDS = 2.0


async def healthz(request: HttpRequest) -> HttpResponse:
    """200 while the process serves requests at all (a liveness check)."""
    return HttpResponse("ok\n", content_type="text/plain")


async def readyz(request: HttpRequest) -> HttpResponse:
    """200 when the process takes new calls: not draining, and its channel layer answers a round
    trip; 503 saying why otherwise (a load balancer's health check)."""
    if STREAMS.draining:
        response = HttpResponse("draining\n", status=503, content_type="text/plain")
        # A drain is the plan, not a fault: Django's request logger would log this 503 at ERROR
        # (and mail ADMINS) on every probe; logged at INFO instead, by the same logger.
        log_response("Draining: %s", request.path, response=response, request=request, level="info")
        return response
    problem = await _layer_problem()
    if problem:
        return HttpResponse(f"channel layer: {problem}\n", status=503, content_type="text/plain")
    return HttpResponse("ready\n", content_type="text/plain")


def metrics_view(request: HttpRequest) -> HttpResponse:
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)


async def _layer_problem() -> str | None:
    layer = get_channel_layer()
    if layer is None:
        return None  # no layer configured: nothing to wait for
    try:
        async with asyncio.timeout(LAYER_PROBE_SECONDS):
            # The default prefix: channels_redis delivers this process's channels through one
            # receive loop, which a live call's pump holds; a channel of another prefix would
            # never be read while a call is live.
            channel = await layer.new_channel()
            await layer.send(channel, {"type": "voiceflow.readyz"})
            await layer.receive(channel)
    except Exception as exc:  # Redis down, refused, timed out: not ready, and why
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None
