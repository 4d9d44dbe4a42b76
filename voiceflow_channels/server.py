"""Serve an ASGI app as a voice edge needs, under daphne (the default) or uvicorn: websocket size
limits, no compression, a patient close handshake, no log line per connection, startup's objects
kept out of the garbage collector's way (`startup.freeze_startup_objects`), and a graceful drain
on SIGTERM, so a rolling deploy never cuts a live call.

    python -m voiceflow_channels.server [--server daphne|uvicorn] [-b HOST] [-p PORT] \
        mysite.asgi:application

Under daphne any other daphne option is passed on; uvicorn takes -b and -p only.

On SIGTERM the process stops taking streams (new upgrades are refused, `/readyz` answers 503),
lets live calls run until they end or VOICEFLOW_DRAIN_SECONDS pass, closes the rest cleanly
(each logs its summary), then exits. A second SIGTERM, or SIGINT, stops at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn
from daphne.cli import CommandLineInterface
from daphne.server import Server as DaphneServer
from daphne.ws_protocol import WebSocketProtocol
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from . import conf, metrics
from .startup import freeze_startup_objects
from .streams import STREAMS
from .tasks import spawn

log = logging.getLogger("voiceflow_channels")

SERVERS = ("daphne", "uvicorn")
# The servers' own limits end a connection; the app's smaller VOICEFLOW_MAX_MESSAGE_BYTES
# (16 KiB) drops an oversize frame first and lets the call go on.
MAX_WEBSOCKET_BYTES = 64 * 1024
# autobahn waits 1 s by default (daphne has no option for it) for the client's reply to our
# close; under load a client answers later, and a call whose frames were all handled ends 1006.
# uvicorn waits 10 s too.
CLOSE_HANDSHAKE_SECONDS = 10
# How long a draining process waits for the call records still being written (a slow database).
RECORDS_SECONDS = 10


class Drain:
    """The signals, for either server: a first SIGTERM drains, then stops the server; a second,
    or SIGINT, stops it at once."""

    def __init__(self, open_websockets: Callable[[], int], stop: Callable[[], None]) -> None:
        self._open_websockets = open_websockets
        self._stop = stop
        self._task: asyncio.Task[None] | None = None

    def sigterm(self) -> None:
        if self._task is not None:
            log.warning("voiceflow: second SIGTERM, stopping now")
            self.stop_now()
            return
        log.info(
            "voiceflow draining: %d live streams, new ones refused, up to "
            "VOICEFLOW_DRAIN_SECONDS=%d",
            len(STREAMS.live),
            conf.drain_seconds(),
        )
        self._task = spawn(self._drain_then_stop())

    async def _drain_then_stop(self) -> None:
        closed = await STREAMS.drain(
            conf.drain_seconds(),
            close=lambda stream: stream.drain_close(),
            hand_over=lambda stream: stream.hand_over(),
        )
        # Let the close handshakes finish, so every call ends with a close frame. Polled, as
        # uvicorn's own shutdown does: uvicorn tells no one when a socket closes.
        try:
            async with asyncio.timeout(CLOSE_HANDSHAKE_SECONDS + 1):
                while self._open_websockets():  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
        except TimeoutError:
            log.warning("voiceflow: %d sockets still open; exiting", self._open_websockets())
        from .records import writer  # the app is loaded by now: its models can be imported

        try:  # the ended calls' records, written before the process goes
            async with asyncio.timeout(RECORDS_SECONDS):
                await writer.written()
        except TimeoutError:
            log.warning("voiceflow: %d call records not written; exiting", len(writer.PENDING))
        log.info("voiceflow drained: %d streams closed at the deadline; exiting", closed)
        metrics.process_exiting()
        self._stop()

    def stop_now(self) -> None:
        if self._task is not None:
            self._task.cancel()  # or it would log "drained" for calls the stop cut
        self._stop()


class DaphneVoiceServer(DaphneServer):  # type: ignore[misc]  # daphne ships no types
    """daphne with a longer close handshake and the drain on SIGTERM."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["signal_handlers"] = False  # ours, below
        super().__init__(*args, ready_callable=self._ready, **kwargs)
        self._drain = Drain(self._open_websockets, self.stop)

    def _open_websockets(self) -> int:
        return sum(
            isinstance(p, WebSocketProtocol) and "disconnected" not in state
            for p, state in self.connections.items()
        )

    def _ready(self) -> None:
        freeze_startup_objects()  # daphne's command line imported the application before
        self.ws_factory.setProtocolOptions(closeHandshakeTimeout=CLOSE_HANDSHAKE_SECONDS)
        loop = asyncio.get_event_loop()  # daphne's: the reactor runs on it
        loop.add_signal_handler(signal.SIGTERM, self._drain.sigterm)
        loop.add_signal_handler(signal.SIGINT, self._drain.stop_now)


class DaphneCommandLine(CommandLineInterface):  # type: ignore[misc]
    server_class = DaphneVoiceServer


class UvicornWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websocket, without the ERROR it logs after each denial response (our
    503 to a refused upgrade): it never marks that handshake complete (uvicorn PR #3138)."""

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True


class UvicornVoiceServer(uvicorn.Server):
    """uvicorn with the drain on SIGTERM in place of its own shutdown, which closes every call
    at once (1012)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._drain = Drain(self._open_websockets, self._stop)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self.config.load()  # imports the application; uvicorn would, first thing in serve()
        freeze_startup_objects()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not uvicorn's: it would shut down at once, then re-raise the signal, so a drained
        # process would die of SIGTERM instead of exiting 0. A signal handler runs between any
        # two bytecodes: the loop takes it from here.
        handler = self._drain.sigterm if sig == signal.SIGTERM else self._drain.stop_now
        self._loop.call_soon_threadsafe(handler)

    def _stop(self) -> None:
        """uvicorn's shutdown: calls still open get 1012; a second stop skips its waits."""
        self.force_exit = self.should_exit
        self.should_exit = True

    def _open_websockets(self) -> int:
        websocket = self.config.ws_protocol_class
        if websocket is None:  # uvicorn loads it at startup; before that, none are open
            return 0
        return sum(isinstance(p, websocket) for p in self.server_state.connections)


# uvicorn logs each websocket upgrade to its error log, not its access log ("for historical
# reasons", uvicorn#2888), and websockets adds "connection open" or "rejected": two lines per
# call, which the app's own start and summary (or refusal) lines already cover.
PER_CONNECTION = ('%s - "WebSocket ', "connection open", "connection rejected")


def _not_per_connection(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(PER_CONNECTION)


def serve_daphne(application: str, argv: list[str]) -> None:
    limits = [
        f"--websocket-max-message-size={MAX_WEBSOCKET_BYTES}",
        f"--websocket-max-frame-size={MAX_WEBSOCKET_BYTES}",
    ]
    DaphneCommandLine().run([*limits, *argv, application])


def serve_uvicorn(application: str, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="--server uvicorn",
        description="Serve an ASGI app under uvicorn; of daphne's options, only -b and -p apply.",
    )
    parser.add_argument("-b", "--bind", default="127.0.0.1", metavar="HOST", help="listen here")
    parser.add_argument("-p", "--port", type=int, default=8000, help="on this port")
    args = parser.parse_args(argv)
    # As daphne's command line does: a project whose LOGGING sets the root logger replaces it.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("uvicorn.error").addFilter(_not_per_connection)
    config = uvicorn.Config(
        application,
        host=args.bind,
        port=args.port,
        # Not "websockets", on websockets' deprecated legacy API (older uvicorn's "auto").
        ws=UvicornWebSocket,
        ws_max_size=MAX_WEBSOCKET_BYTES,
        # Twilio connects without it; a client that asked for it would cost zlib per frame.
        ws_per_message_deflate=False,
        # A FastAPI or Starlette app's startup and shutdown run; a Django or Channels app has
        # none, which uvicorn says once at start ("appears unsupported", INFO).
        lifespan="auto",
        access_log=False,
        log_config=None,  # the project's LOGGING formats uvicorn's lines like the app's
    )
    UvicornVoiceServer(config).run()


def serve(application: str, argv: list[str]) -> None:
    """Run `application` under the server `--server` in `argv` names (daphne by default), with
    the rest of `argv` as its options and the voice edge's settings."""
    choice = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    choice.add_argument("--server", choices=SERVERS, default="daphne")
    args, rest = choice.parse_known_args(argv)
    if args.server == "uvicorn":
        serve_uvicorn(application, rest)
    else:
        serve_daphne(application, rest)


if __name__ == "__main__":
    serve(sys.argv[-1], sys.argv[1:-1])
