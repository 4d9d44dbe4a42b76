"""A `<Redirect>` the simulator cannot follow (`--answer`): the redirect's URL answers TwiML with
no `<Connect><Stream>`, and the call fails saying so, after Twilio's requests went out signed,
each with the call's one CallSid. (Following a redirect to a new stream is tested on real
servers, with a drain, in test_call_control_e2e.py.)

Twilio's side is a stub webhook in this process, so the test decides what each request answers;
the stream is a real daphne process of the example project, whose demo hangs up on 9."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest

from tests.servers import Server
from voiceflow_channels import twiml
from voiceflow_channels.signature import compute_form_signature
from voiceflow_channels.testing import callsim
from voiceflow_channels.testing.webhook import Twilio

TOKEN = "stub-auth-token"
NO_STREAM = "<Response><Say>bye</Say></Response>"


@dataclass
class Stub:
    """Twilio's webhooks for the test: /twilio/voice connects to `stream`, its action answers
    `<Redirect>` back to /twilio/voice?reconnect=1, which answers no stream. Every request is
    kept: its path, its form, whether its signature matched."""

    stream: str
    base: str = ""
    requests: list[tuple[str, dict[str, str], bool]] = field(default_factory=list)

    def answer(self, path: str) -> str:
        if path == "/twilio/voice":
            return twiml.connect_stream(self.stream, f"{self.base}/after", {})
        if path == "/after":
            return twiml.redirect(f"{self.base}/twilio/voice?reconnect=1")
        return NO_STREAM


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Server("daphne", VOZ_FEATURE_VOICE_FLOW_A="1")
    stub = Stub(server.url)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            form = dict(parse_qsl(body))
            signature = compute_form_signature(TOKEN, stub.base + self.path, form)
            stub.requests.append((self.path, form, signature == self.headers["X-Twilio-Signature"]))
            answer = stub.answer(self.path).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.base = f"http://127.0.0.1:{http.server_address[1]}"
    serving = threading.Thread(target=http.serve_forever)
    serving.start()
    try:
        yield stub
    finally:
        http.shutdown()
        http.server_close()
        serving.join()
        server.stop()


async def test_a_redirect_that_answers_no_stream_fails_the_call_saying_so(stub):
    result = await callsim.run(
        stub.stream,
        1,
        3.0,
        True,
        first=73,
        presses=[(0.5, "9")],
        twilio=Twilio(stub.base, stub.base, TOKEN),
    )
    [call] = result.calls
    assert not call.ok
    assert call.error.startswith(
        "redirect: ValueError: the webhook answered no <Connect><Stream url>"
    ), call.error
    assert call.legs == (), "one stream: the redirect opened none"
    assert call.then == f"Redirect {stub.base}/twilio/voice?reconnect=1"
    # The webhook, the action once the demo hung up, the redirect: one call, each signed over
    # the URL Twilio requests.
    assert [path for path, _, _ in stub.requests] == [
        "/twilio/voice",
        "/after",
        "/twilio/voice?reconnect=1",
    ]
    assert {form["CallSid"] for _, form, _ in stub.requests} == {call.call_sid}
    assert all(signed for _, _, signed in stub.requests)
    assert [form["CallStatus"] for _, form, _ in stub.requests] == ["ringing"] + 2 * ["in-progress"]
