"""The pause a deploy costs a call: calls talking to the example's assistant (the fake model) on a
daphne process are handed over by a SIGTERM to a uvicorn process on one Redis, the simulator
playing Twilio (the `<Connect action>`, its `<Redirect>`, a new stream for the same CallSid).

    python -m benchmarks.resume [--calls 4] [--record DIR]

Per call: SIGTERM to the first stream closed (the hand-over waits for a quiet moment), the
stream closed to the new model session holding the whole history (the simulator's action,
redirect and new stream on loopback, then the model session opened and given the history), and
what the caller heard across both legs (one WAV each). Times come from the servers' log lines
(UTC, ms) and this process's clock, on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks.servers import (
    BRIDGE_OURS,
    BRIDGE_OURS_UVICORN,
    Server,
    Spec,
    redis_server,
    with_model,
)
from voiceflow_channels.testing import CallResult, callsim
from voiceflow_channels.testing.fake_realtime import FakeRealtime, Reply, Script
from voiceflow_channels.testing.webhook import Twilio

PUBLIC = "wss://voice.example.com"
SECONDS = 8.0
# The caller's first turn is answered on daphne; the SIGTERM comes while that answer plays;
# the second turn is answered on uvicorn, from the history.
TALKS = ((1.5, 0.8), (5.5, 0.8))
GOAL_P99_MS = 300
# Not measured here: Twilio's own turnaround once our server closes the stream (its request to
# the action URL, the redirect's request to the webhook, the new websocket from its media
# edge). Assumed from its round trips to a server in the same region: ~50-150 ms each, so
# 200-400 ms in all; the caller's pause is that plus what is measured here.
TWILIO_TURNAROUND_MS = (200, 400)
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z")


def logged_at(server: Server, pattern: str) -> dict[str, float]:
    """callSid -> the time (epoch seconds) of each log line matching `pattern` (its group 1)."""
    found = {}
    for line in server.lines:
        match, stamp = re.search(pattern, line), LOG_TIME.match(line)
        if match and stamp:
            at = datetime.fromisoformat(stamp[1] + "+00:00").timestamp()
            found[match[1]] = at
    return found


def spec(base: Spec, base_url: str, redis_url: str) -> Spec:
    env = (("REDIS_URL", redis_url), ("VOICEFLOW_PUBLIC_URL", PUBLIC))
    model = with_model(base, base_url)
    return dataclasses.replace(model, env=(*model.env, *env))


def p99(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[98]
        if len(values) > 1
        else values[0]
    )


async def measure(calls: int, record: Path) -> int:
    script = Script(
        speed=4.0,
        caller_transcripts=("Where is my order?",),
        replies=(Reply(audio_ms=800, transcript="Thanks for calling the shop."),),
        default_reply=Reply(audio_ms=1200, transcript="Your order ships on Friday."),
    )
    async with FakeRealtime(script=script) as fake:
        with redis_server() as redis_url:
            daphne = await asyncio.to_thread(Server, spec(BRIDGE_OURS, fake.base_url, redis_url))
            try:
                uvicorn = await asyncio.to_thread(
                    Server, spec(BRIDGE_OURS_UVICORN, fake.base_url, redis_url)
                )
            except BaseException:
                daphne.stop()
                raise
            try:
                live = Twilio.for_stream(uvicorn.url, PUBLIC)
                playing = asyncio.create_task(
                    callsim.run(
                        daphne.url, calls, SECONDS, True, record=record, twilio=live, talk=TALKS
                    )
                )
                await fake.wait_response_started(2 * calls)  # every call's first answer
                sigterm = time.time()
                daphne.proc.send_signal(signal.SIGTERM)
                result = await playing
            finally:
                daphne.stop()
                uvicorn.stop()
    closed = logged_at(daphne, r"call ended \(handed_over\) callSid=(\w+)")
    resumed = logged_at(uvicorn, r"resumed callSid=(\w+) \(stream\)")
    # The assistant's own account: the items given, and the ms its resume log line says.
    said = r"resumed callSid=(\w+) \(stream\): (\d+) items of the conversation in (\d+) ms"
    items = {m[1]: f"{m[2]} in {m[3]} ms" for line in uvicorn.lines if (m := re.search(said, line))}
    return report(result.calls, sigterm, closed, resumed, items)


def report(
    calls: tuple[CallResult, ...],
    sigterm: float,
    closed: dict[str, float],
    resumed: dict[str, float],
    items: dict[str, str],
) -> int:
    print(f"{len(calls)} calls on daphne, SIGTERM, handed over to uvicorn (one Redis, fake model)")
    print(
        f"{'call':<36} {'SIGTERM->closed':>16} {'closed->history':>16} {'items, logged':>20} "
        f"{'sim turnaround':>15}  heard"
    )
    to_close, to_history, ours = [], [], []
    for call in calls:
        sid = call.call_sid
        legs = call.legs
        turnaround = legs[1].turnaround_ms if len(legs) > 1 else None
        if sid in closed and sid in resumed:
            a, b = (closed[sid] - sigterm) * 1000, (resumed[sid] - closed[sid]) * 1000
            to_close.append(a)
            to_history.append(b)
            if turnaround is not None:
                ours.append(b - turnaround)
            figures = f"{a:>14.0f}ms {b:>14.0f}ms {items[sid]:>20}"
        else:
            figures = f"{'not followed: ' + (call.error or '?')[:40]:>40}"
        shown = f"{turnaround:.0f} ms" if turnaround is not None else "-"
        print(f"{sid:<36} {figures} {shown:>15}  {call.recording}")
    if not to_history:
        print("no call was resumed")
        return 1
    print(
        f"SIGTERM -> stream closed: p50 {statistics.median(to_close):.0f} ms, "
        f"p99 {p99(to_close):.0f} ms (the hand-over waits for each call's quiet moment)"
    )
    worst = p99(to_history)
    print(
        f"stream closed -> new model session holding the history: p50 "
        f"{statistics.median(to_history):.0f} ms, p99 {worst:.0f} ms "
        f"(goal p99 <= {GOAL_P99_MS} ms on loopback: {'met' if worst <= GOAL_P99_MS else 'MISSED'})"
    )
    low, high = TWILIO_TURNAROUND_MS
    if ours:
        print(
            f"of which ours (the new stream open -> the history given): p50 "
            f"{statistics.median(ours):.0f} ms, p99 {p99(ours):.0f} ms; the rest is the "
            "simulator's action, redirect and connect on loopback, standing in for Twilio's"
        )
        print(
            f"assumed Twilio turnaround (action, redirect, new stream): {low}-{high} ms, so the "
            f"caller's pause after the last word is about {statistics.median(ours) + low:.0f}-"
            f"{p99(ours) + high:.0f} ms"
        )
    return 0 if len(to_history) == len(calls) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.resume", description=__doc__)
    parser.add_argument("--calls", type=int, default=4, help="calls handed over at once")
    parser.add_argument("--record", type=Path, help="where the WAVs go (default: a temp dir)")
    args = parser.parse_args(argv)
    record = args.record or Path(tempfile.mkdtemp(prefix="resume-heard-"))
    return asyncio.run(measure(args.calls, record))


if __name__ == "__main__":
    sys.exit(main())
