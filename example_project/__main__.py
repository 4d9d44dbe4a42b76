"""Serve the example project under daphne with explicit websocket size limits.

python -m example_project [daphne options, e.g. -b 127.0.0.1 -p 8000]
"""

from __future__ import annotations

import sys

from daphne.cli import CommandLineInterface
from daphne.server import Server

# Daphne's own limits end a connection; the app's smaller VOICEFLOW_MAX_MESSAGE_BYTES (16 KiB)
# drops an oversize frame first and lets the call go on.
MAX_WEBSOCKET_BYTES = 64 * 1024
# autobahn waits 1 s by default (daphne has no option for it) for the client's reply to our
# close; under load a client answers later, and a call whose frames were all handled ends 1006.
CLOSE_HANDSHAKE_SECONDS = 10
APPLICATION = "example_project.asgi:application"


class ExampleServer(Server):
    """daphne's server, with a longer close handshake (set once the factory exists)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, ready_callable=self._tune_websockets, **kwargs)

    def _tune_websockets(self) -> None:
        self.ws_factory.setProtocolOptions(closeHandshakeTimeout=CLOSE_HANDSHAKE_SECONDS)


class ExampleCommandLine(CommandLineInterface):
    server_class = ExampleServer


def serve(application: str, argv: list[str]) -> None:
    """Run daphne with `argv` and this project's websocket settings on `application`."""
    limits = [
        f"--websocket-max-message-size={MAX_WEBSOCKET_BYTES}",
        f"--websocket-max-frame-size={MAX_WEBSOCKET_BYTES}",
    ]
    ExampleCommandLine().run([*limits, *argv, application])


if __name__ == "__main__":
    serve(APPLICATION, sys.argv[1:])
