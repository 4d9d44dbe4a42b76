"""The router in an app that is not Django's: the README's FastAPI app (tests/fastapi_app.py) under
the launcher's uvicorn with a call played through it, and the router under a Mount's prefix."""

from __future__ import annotations

import logging

import pytest
import websockets
from channels.testing import WebsocketCommunicator
from fastapi import FastAPI
from starlette.routing import Router, WebSocketRoute
from websockets.exceptions import InvalidStatus

from tests.servers import Server
from voiceflow_channels.routing import build_router
from voiceflow_channels.testing import callsim

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


@pytest.mark.parametrize(
    ("path", "served"), [("/voice/twilio/stream", True), ("/twilio/stream", False)]
)
async def test_under_a_mount_s_prefix_the_stream_is_served_at_the_prefixed_path_only(
    flag_on, path, served
):
    # A Mount passes its prefix on as root_path, which Channels' URLRouter strips.
    app = FastAPI()
    app.mount("/voice", Router([WebSocketRoute("/twilio/stream", build_router())]))
    communicator = WebsocketCommunicator(app, path)
    connected, _ = await communicator.connect()
    assert connected is served
    await communicator.disconnect()


async def test_a_route_at_the_prefixed_path_without_a_mount_is_refused_by_the_router(
    flag_on, caplog
):
    caplog.set_level(logging.INFO, logger="voiceflow_channels")
    # The router sees the whole path, voice/twilio/stream, and serves only twilio/stream.
    app = FastAPI()
    app.router.add_websocket_route("/voice/twilio/stream", build_router())
    communicator = WebsocketCommunicator(app, "/voice/twilio/stream")
    connected, _ = await communicator.connect()
    assert connected is False
    await communicator.disconnect()
    assert "voiceflow refused websocket /voice/twilio/stream: no such route" in caplog.text
