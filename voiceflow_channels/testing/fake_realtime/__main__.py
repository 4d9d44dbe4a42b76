"""`python -m voiceflow_channels.testing.fake_realtime --port 0 [script options]`.

Serves until SIGINT or SIGTERM. Once it listens it prints one line to stdout,
`fake realtime listening on http://127.0.0.1:PORT/v1` (the SDK's base_url), which is what a
test or a benchmark starting it waits for; with --log, a line per connection, response and
truncate follows.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from .script import FunctionCall, Reply, Script
from .server import FakeRealtime


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m voiceflow_channels.testing.fake_realtime",
        description="A fake OpenAI Realtime server (GA interface) on 127.0.0.1.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (the default): a free port")
    parser.add_argument(
        "--audio-ms",
        type=int,
        default=Reply.audio_ms,
        help="audio in each response, ms (default %(default)s)",
    )
    parser.add_argument("--transcript", default=Reply.transcript)
    parser.add_argument(
        "--speed",
        type=float,
        default=Script.speed,
        help="ms of audio sent per ms of wall clock; 0: all at once (default %(default)s)",
    )
    parser.add_argument(
        "--first-delta-ms",
        type=int,
        default=0,
        help="wall-clock ms before each response's first audio delta",
    )
    parser.add_argument(
        "--chunk-bytes",
        default=",".join(map(str, Script.chunk_bytes)),
        help="delta sizes in bytes, cycled (default %(default)s)",
    )
    parser.add_argument(
        "--late-deltas", type=int, default=0, help="deltas still sent after a response is cancelled"
    )
    parser.add_argument(
        "--tool",
        action="append",
        default=[],
        metavar="N:NAME[:ARGS]",
        help="response N (0-based, per session) calls tool NAME with the JSON "
        "ARGS (default {}); repeat for more calls",
    )
    parser.add_argument(
        "--preamble-ms", type=int, default=0, help="audio before a --tool response's calls, ms"
    )
    parser.add_argument(
        "--vad-threshold",
        type=int,
        default=Script.vad_threshold_rms,
        help="RMS of a voiced 20 ms frame (default %(default)s)",
    )
    parser.add_argument(
        "--refuse-key",
        action="append",
        default=[],
        metavar="KEY",
        help="answer this API key with HTTP 401",
    )
    parser.add_argument(
        "--hang-handshake",
        action="store_true",
        help="accept TCP but never answer the websocket upgrade",
    )
    parser.add_argument(
        "--fail-after",
        type=float,
        metavar="S",
        help="end each session with a server_error after S seconds",
    )
    parser.add_argument(
        "--session-cap",
        type=float,
        metavar="S",
        help="close each session with 1001 after S seconds (the 60-minute cap)",
    )
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="no rate_limits.updated events"
    )
    parser.add_argument(
        "--rate-limit",
        action="append",
        type=int,
        default=[],
        metavar="N",
        help="refuse response N (0-based, per session) with rate_limit_exceeded",
    )
    parser.add_argument(
        "--log", action="store_true", help="a line per connection, response and truncate on stdout"
    )
    return parser.parse_args(argv)


def script_from(args: argparse.Namespace) -> Script:
    """The Script the options describe; a malformed --tool or --chunk-bytes exits with why."""
    try:
        chunk_bytes = tuple(int(size) for size in args.chunk_bytes.split(","))
    except ValueError:
        sys.exit(f"--chunk-bytes: expected sizes like 1117,883, got {args.chunk_bytes!r}")
    if not chunk_bytes or min(chunk_bytes) <= 0:
        sys.exit(f"--chunk-bytes: sizes must be positive, got {args.chunk_bytes!r}")
    default = Reply(audio_ms=args.audio_ms, transcript=args.transcript)
    calls: dict[int, list[FunctionCall]] = {}
    for tool in args.tool:
        number, _, rest = tool.partition(":")
        name, _, arguments = rest.partition(":")
        if not number.isdigit() or not name:
            sys.exit(f"--tool: expected N:NAME[:ARGS], e.g. 1:check_order_status, got {tool!r}")
        calls.setdefault(int(number), []).append(FunctionCall(name, arguments or "{}"))
    replies = [default] * (max(calls, default=-1) + 1)
    for number, functions in calls.items():
        replies[number] = Reply(
            audio_ms=args.preamble_ms, transcript="One moment.", function_calls=tuple(functions)
        )
    return Script(
        replies=tuple(replies),
        default_reply=default,
        chunk_bytes=chunk_bytes,
        speed=args.speed or None,
        first_delta_ms=args.first_delta_ms,
        late_deltas=args.late_deltas,
        vad_threshold_rms=args.vad_threshold,
        refuse_keys=frozenset(args.refuse_key),
        hang_handshake=args.hang_handshake,
        fail_after_s=args.fail_after,
        session_cap_s=args.session_cap,
        rate_limits_updated=not args.no_rate_limits,
        rate_limited_responses=frozenset(args.rate_limit),
    )


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log = (lambda line: print(line, flush=True)) if args.log else None
    async with FakeRealtime(script_from(args), host=args.host, port=args.port, log=log) as fake:
        print(f"fake realtime listening on {fake.base_url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
