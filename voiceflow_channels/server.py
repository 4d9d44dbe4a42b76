"""Serve an ASGI app under daphne as a voice edge needs: websocket size limits, a patient close
handshake, and a graceful drain on SIGTERM, so a rolling deploy never cuts a live call.

    python -m voiceflow_channels.server [daphne options, e.g. -p 8000] mysite.asgi:application

On SIGTERM the process stops taking streams (new upgrades are refused, `/readyz` answers 503),
lets live calls run until they end or VOICEFLOW_DRAIN_SECONDS pass, closes the rest cleanly
(each logs its summary), then exits. A second SIGTERM, or SIGINT, stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from . import conf, metrics
from .streams import STREAMS

log = logging.getLogger("voiceflow_channels")

# Daphne's own limits end a connection; the app's smaller VOICEFLOW_MAX_MESSAGE_BYTES (16 KiB)
# drops an oversize frame first and lets the call go on.
MAX_WEBSOCKET_BYTES = 64 * 1024
# autobahn waits 1 s by default (daphne has no option for it) for the client's reply to our
# close; under load a client answers later, and a call whose frames were all handled ends 1006.
CLOSE_HANDSHAKE_SECONDS = 10


class VoiceServer(Server):
    """daphne's server with a longer close handshake and the drain on SIGTERM."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["signal_handlers"] = False  # ours, below
        super().__init__(*args, ready_callable=self._ready, **kwargs)
        self._sockets_closed = asyncio.Event()

    def protocol_disconnected(self, protocol: object) -> None:
        super().protocol_disconnected(protocol)
        if not self._open_websockets():
            self._sockets_closed.set()

    def _open_websockets(self) -> int:
        return sum(
            isinstance(p, WebSocketProtocol) and "disconnected" not in state
            for p, state in self.connections.items()
        )

    def _ready(self) -> None:
        self.ws_factory.setProtocolOptions(closeHandshakeTimeout=CLOSE_HANDSHAKE_SECONDS)
        loop = asyncio.get_event_loop()  # daphne's: the reactor runs on it
        loop.add_signal_handler(signal.SIGTERM, self._sigterm)
        loop.add_signal_handler(signal.SIGINT, self.stop)

    def _sigterm(self) -> None:
        if STREAMS.draining:
            log.warning("voiceflow: second SIGTERM, stopping now")
            self.stop()
            return
        log.info(
            "voiceflow draining: %d live streams, new ones refused, up to "
            "VOICEFLOW_DRAIN_SECONDS=%d",
            len(STREAMS.live),
            conf.drain_seconds(),
        )
        self._drain = asyncio.ensure_future(self._drain_then_stop())

    async def _drain_then_stop(self) -> None:
        closed = await STREAMS.drain(conf.drain_seconds(), lambda stream: stream.drain_close())
        # Let the close handshakes finish, so every call ends with a close frame.
        if self._open_websockets():
            self._sockets_closed.clear()
            try:
                async with asyncio.timeout(CLOSE_HANDSHAKE_SECONDS + 1):
                    await self._sockets_closed.wait()
            except TimeoutError:
                log.warning("voiceflow: %d sockets still open; exiting", self._open_websockets())
        log.info("voiceflow drained: %d streams closed at the deadline; exiting", closed)
        metrics.process_exiting()
        self.stop()


class VoiceCommandLine(CommandLineInterface):
    server_class = VoiceServer


def serve(application: str, argv: list[str]) -> None:
    """Run daphne with `argv` and the voice edge's settings on `application`."""
    limits = [
        f"--websocket-max-message-size={MAX_WEBSOCKET_BYTES}",
        f"--websocket-max-frame-size={MAX_WEBSOCKET_BYTES}",
    ]
    VoiceCommandLine().run([*limits, *argv, application])


if __name__ == "__main__":
    serve(sys.argv[-1], sys.argv[1:-1])
