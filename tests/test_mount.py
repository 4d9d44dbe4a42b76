"""The router in an app that is not Django's: the README's FastAPI app (tests/fastapi_app.py) under
the launcher's uvicorn with a call played through it, and the router under a prefix, mounted each
way a user may: the stream is served at its whole path, the one the voice webhook names."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import pytest
import websockets
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path
from fastapi import FastAPI
from starlette.routing import Router, WebSocketRoute
from websockets.exceptions import InvalidStatus

from tests.servers import Server
from voiceflow_channels.routing import build_router
from voiceflow_channels.signature import compute_signature
from voiceflow_channels.testing import SimulatedCall, callsim
from voiceflow_channels.testing.callsim import open_socket
from voiceflow_channels.testing.webhook import Twilio, answer

# Served, never imported here: it configures Django's settings, which pytest has configured.
FASTAPI_APP = "tests.fastapi_app:app"
HELLO = (200, '{"hello":"from FastAPI"}')


async def test_the_fastapi_app_serves_a_call_through_the_router_and_its_own_routes_still_answer():
    server = Server("uvicorn", FASTAPI_APP, VOZ_FEATURE_VOICE_FLOW_A="1")
    try:
        server.wait_for(r"fastapi_app startup ran")  # the launcher ran the app's lifespan
        # 2.5 s of audio: 125 media frames, one mark and one dtmf.
        result = await callsim.run(server.url, 1, 2.5, realtime=False, first=401)
        assert not result.failed
        [call] = result.calls
        assert (call.media_frames, call.messages, call.close_code) == (125, 130, 1000)
        [summary] = server.wait_for(rf"call ended \(stop\) callSid={call.call_sid} ")
        assert (
            "frames=125 bytes=20000 gaps=0 out_of_order=0 marks=1 dtmf=1 unknown=0 malformed=0"
            in summary
        )
        assert server.get("/hello") == HELLO
        assert server.get("/nope") == (404, '{"detail":"Not Found"}')  # FastAPI's, not ours
        assert server.get("/ops/healthz") == (200, "ok\n")  # Django's view, mounted at /ops
        assert not [line for line in server.lines if "Traceback" in line]
    finally:
        server.stop()


async def test_with_the_flag_off_the_fastapi_app_refuses_the_stream_with_403_and_serves_the_rest():
    server = Server("uvicorn", FASTAPI_APP, VOZ_FEATURE_VOICE_FLOW_A="0")
    try:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(server.url):
                pass
        assert refused.value.response.status_code == 403
        server.wait_for(
            r"refused websocket /twilio/stream: no route \(VOZ_FEATURE_VOICE_FLOW_A is off"
        )
        assert server.get("/hello") == HELLO
        assert not [line for line in server.lines if "Traceback" in line]
    finally:
        server.stop()


def mounted(how: str):
    """The router under /voice, mounted as a user may."""
    if how == "starlette_mount":  # the Mount passes its prefix on as root_path
        app = FastAPI()
        app.mount("/voice", Router([WebSocketRoute("/twilio/stream", build_router())]))
        return app
    if how == "starlette_route":
        app = FastAPI()
        app.router.add_websocket_route("/voice/twilio/stream", build_router())
        return app
    if how == "channels_nested":  # the outer URLRouter passes the rest on as path_remaining
        return URLRouter([path("voice/", build_router())])
    return build_router()  # at the root of ProtocolTypeRouter


MOUNTS = ["starlette_mount", "starlette_route", "channels_nested", "root"]


@pytest.mark.parametrize(
    ("how", "path", "served"),
    [
        *((how, "/voice/twilio/stream", True) for how in MOUNTS),
        # (An outer URLRouter of Channels fails on a path it has no route for, as it always has.)
        *((how, "/twilio/stream", False) for how in MOUNTS if how != "channels_nested"),
    ],
)
async def test_with_a_stream_prefix_the_stream_is_served_at_its_whole_path_however_mounted(
    flag_on, how, path, served
):
    flag_on.VOICEFLOW_STREAM_PREFIX = "/voice/"
    communicator = WebsocketCommunicator(mounted(how), path)
    connected, _ = await communicator.connect()
    assert connected is served
    await communicator.disconnect()


@pytest.mark.parametrize("how", ["starlette_mount", "channels_nested"])
async def test_a_mount_under_a_prefix_the_setting_does_not_name_is_refused_saying_where_it_is(
    flag_on, caplog, how
):
    caplog.set_level(logging.INFO, logger="voiceflow_channels")
    # The voice webhook's TwiML names /twilio/stream: the router serves only that, and says so.
    communicator = WebsocketCommunicator(mounted(how), "/voice/twilio/stream")
    connected, _ = await communicator.connect()
    assert connected is False
    await communicator.disconnect()
    assert (
        "voiceflow refused websocket /voice/twilio/stream: no such route (the stream is at "
        "/twilio/stream: VOICEFLOW_STREAM_PREFIX)"
    ) in caplog.text


async def test_a_real_server_with_a_stream_prefix_answers_twiml_whose_stream_url_it_serves():
    token, public = "test-token", "wss://voice.example.com"
    server = Server(
        "daphne",
        VOZ_FEATURE_VOICE_FLOW_A="1",
        VOICEFLOW_STREAM_PREFIX="voice",
        VOICEFLOW_PUBLIC_URL=public,
        TWILIO_AUTH_TOKEN=token,
    )
    try:
        call = SimulatedCall(n=71)
        base = f"http://127.0.0.1:{server.port}"
        connect = await answer(Twilio(base, "https://voice.example.com", token), call)
        assert connect.stream_url == "wss://voice.example.com/voice/twilio/stream"
        # Twilio connects to the URL it was given, signed over it; a proxy passes the path on.
        signature = compute_signature(token, connect.stream_url)
        local = f"ws://127.0.0.1:{server.port}{urlsplit(connect.stream_url).path}"
        ws = await open_socket(local, {"X-Twilio-Signature": signature})
        for frame in (call.connected(), call.start(), call.media(), call.stop()):
            await ws.send(frame)
        await ws.wait_closed()
        [summary] = await asyncio.to_thread(
            server.wait_for, rf"call ended \(stop\) callSid={call.call_sid} "
        )
        assert "frames=1 " in summary
        assert not [line for line in server.lines if "Traceback" in line]
    finally:
        server.stop()
