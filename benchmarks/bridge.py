"""The bridge benchmark: Twilio calls through a server to a Realtime model and back, side by side
in one run against the same fake Realtime server: ours (the example's RealtimeAssistant) under
daphne and uvicorn, the samples' bridge under the same uvicorn, Twilio's twilio-agent-connect (tac)
under its own server, and a bare bridge (the floor).

    python -m benchmarks.bridge [--calls 100] [--seconds 20] [--rounds 5] [--quick]

Per server: its CPU per bridged call-second, and the latency its edge adds, p50 and p99: (a) a
Twilio frame in to its `input_audio_buffer.append` out, (b) a `response.output_audio.delta` in to
the first `media` carrying its audio out, (c) `input_audio_buffer.speech_started` in to `clear`
out. The simulated callers and the fake run in this process (one clock: benchmarks/bridge_tap.py);
each server is a process of its own. A round fails (exit status 1) when a call fails or a
server's frame count differs from what was sent. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import gc
import importlib.util
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from websockets.frames import CloseCode

from benchmarks.bridge_tap import (
    Edge,
    Tap,
    TimedFake,
    caller_audio,
    match,
    percentile,
    tapped_simulator,
    timed_fake,
)
from benchmarks.report import SATURATED, cost_line, lost_frames, numbers, server_name
from benchmarks.servers import (
    BARE_BRIDGE,
    BRIDGE_OURS,
    BRIDGE_OURS_UVICORN,
    END_LINES_TIMEOUT,
    SAMPLES_BRIDGE,
    SAMPLES_BRIDGE_NO_DEFLATE,
    TAC_BRIDGE,
    Server,
    Spec,
    ours_at,
    with_model,
)
from voiceflow_channels.mulaw import FRAME_BYTES, MULAW_SILENCE
from voiceflow_channels.testing import callsim
from voiceflow_channels.testing.fake_realtime import Reply, Script

SPECS = (
    BRIDGE_OURS,
    BRIDGE_OURS_UVICORN,
    SAMPLES_BRIDGE,
    SAMPLES_BRIDGE_NO_DEFLATE,
    TAC_BRIDGE,
    BARE_BRIDGE,
)
OURS_KEYS = ("a", "au")
NAME_WIDTH = 36  # the longest: "e. samples' bridge (FastAPI), uvicorn"
# The model's every answer (the greeting too): 2 s of audio, sent at the fake's default 4x real
# time in odd-sized deltas.
REPLY_MS = 2000
# Each caller talks for TALK_SECONDS at these offsets of every TURN_SECONDS: the first turn is
# answered (2 s of audio from 0.5 s after it ends), the second barges in a second into that
# answer, whose own answer then plays out before the next pair. Each call's pairs are shifted by
# its own share of TURN_SECONDS, so that turns end at different times, as independent callers'
# do: the simulator starts every call at once, and with one schedule a round's answers would all
# start in the same few milliseconds.
TALK_SECONDS = 1.0
TURN_SECONDS = 7.0
TURN_STARTS = (1.0, 3.5)
FIRST_TALK = 0.5  # no caller talks before (a turn shifted earlier is left out)
# Every call connects, and is greeted, in the same second: a burst independent calls do not make.
# The latencies are taken after it, from STEADY_SECONDS after the round's first frame (those of
# the whole round are shown apart). CPU is over the whole round, and in steady state apart: from
# STEADY_SECONDS after the first frame to STEADY_END before the calls end.
STEADY_SECONDS = 1.5
STEADY_END = 0.5
MIN_SECONDS = 4.0
WARMUP_CALLS = 10
WARMUP_SECONDS = 5.0
# After the last end line: time for the bridges' closes to reach the fake before it is asked
# which sessions are still open.
SETTLE_SECONDS = 1.0
SILENT = bytes([MULAW_SILENCE]) * FRAME_BYTES
GOAL_RATIO = 1.0  # ours on uvicorn against the samples' bridge on the same uvicorn, CPU
MOONSHOT_RATIO = 0.8
GOAL_P99_MS = 5.0  # each edge latency of ours at the load given
LOG_PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")
PIPECAT_LEFT_OUT = (
    "p. pipecat's OpenAI Realtime pipeline with its Twilio serializer: not run. Its "
    "OpenAIRealtimeLLMService (pipecat-ai 1.14) sends the caller's audio as 24 kHz PCM whatever "
    "the session says (_send_user_audio resamples every frame to OPENAI_SAMPLE_RATE) and reads "
    "deltas as 24 kHz PCM, and the fake's server VAD hears audio/pcmu only: with pipecat's "
    "default session (audio/pcm) the fake never hears speech, so no turn is answered and nothing "
    "barges in; with audio/pcmu declared, the PCM bytes read as mu-law start speech at 0 ms and "
    "it never stops (benchmarks/README.md)"
)


class RoundFailed(RuntimeError):
    """A call failed, or a server did not handle every frame sent."""


def talk_windows(seconds: float, shift: float = 0.0) -> list[tuple[float, float]]:
    """One caller's turns, (start, duration) each, within a call of `seconds`, its pairs
    shifted by `shift` seconds (0 <= shift < TURN_SECONDS)."""
    windows = []
    period = shift - TURN_SECONDS
    while period < seconds:
        for offset in TURN_STARTS:
            start = period + offset
            if start >= FIRST_TALK and start + TALK_SECONDS <= seconds:
                windows.append((start, TALK_SECONDS))
        period += TURN_SECONDS
    return windows


@functools.cache
def voices(calls: int, seconds: float) -> list[bytes]:
    """The audio of each of `calls` callers, each shifted by its share of TURN_SECONDS."""
    return [
        caller_audio(seconds, talk_windows(seconds, i * TURN_SECONDS / calls)) for i in range(calls)
    ]


@dataclass(frozen=True)
class Latency:
    """One edge latency over one round (ms): p50 and p99 after the start-up burst, over how
    many events, and the p99 of the whole round."""

    p50: float
    p99: float
    events: int
    p99_whole: float

    @classmethod
    def of(cls, samples: list[tuple[float, float]]) -> Latency:
        steady = [ms for at, ms in samples if at >= STEADY_SECONDS]
        whole = [ms for _, ms in samples]
        return cls(
            percentile(steady, 0.5), percentile(steady, 0.99), len(steady), percentile(whole, 0.99)
        )


# The edge latencies: each one's name, what it times, and where its samples are.
LATENCIES: tuple[tuple[str, str, Callable[[Edge], list[tuple[float, float]]]], ...] = (
    ("a", "frame -> append", lambda edge: edge.append),
    ("b", "delta -> media", lambda edge: edge.first_delta),
    ("c", "speech_started -> clear", lambda edge: edge.clear),
)


@dataclass(frozen=True)
class Round:
    """One server's share of one round."""

    server_ms: float  # server CPU per call-second
    steady_ms: float  # the same from STEADY_SECONDS into the calls to STEADY_END before their end
    runner_ms: float  # the benchmark's own CPU (simulator and fake) per call-second
    busy: float  # server CPU over the round's wall time
    latencies: tuple[Latency, ...]  # as LATENCIES
    deltas_heard: int
    deltas_sent: int
    unmatched: int  # model sessions no call heard a delta of
    crossed: int  # deltas heard on another call than their session's
    answers: int
    cancelled: int
    truncates: int
    refused_truncates: int
    model_errors: collections.Counter[str]
    log_problems: list[str]
    left_open: int  # the round's model sessions still open after its calls ended
    clears_heard: int
    unclean: int  # calls whose socket ended without a close frame (their frames all handled)


async def play(fake: TimedFake, server: Server, calls: int, seconds: float, first: int) -> Round:
    """Play `calls` real-time talking calls at `server`, check them, and match the tap."""
    # This process is the measuring instrument: no collector pauses in it during the calls (a
    # full collection over a heap grown with the samples' leaked sessions took tens of ms, and
    # showed in every server's p99). A round's records are a few hundred MB at most.
    gc.collect()
    gc.disable()
    tap = Tap(voices(calls, seconds), first)
    fake.tap = tap
    since = len(server.lines)
    cpu, own = server.cpu_seconds(), time.process_time()
    steady = asyncio.create_task(steady_cpu(server, tap, seconds))
    try:
        with tapped_simulator(tap):
            # One talk window over the whole call: every frame is rendered with audio, each
            # call's own (the tap's voices), not this.
            result = await callsim.run(
                server.url,
                calls,
                seconds,
                True,
                first=first,
                talk=[(0.0, seconds)],
                talk_audio=SILENT,
            )
    finally:
        gc.enable()
    cpu, own = server.cpu_seconds() - cpu, time.process_time() - own
    steady_seconds = await steady
    title = server.spec.title
    # A socket that ends without a close frame after the call's every frame (tac's, as uvicorn
    # drops it when the app returns unclosed) is counted, and its frames checked below.
    failed = [c for c in result.failed if c.close_code != CloseCode.ABNORMAL_CLOSURE]
    if failed:
        raise RoundFailed(f"{title}: {len(failed)} calls failed: {failed[0]}")
    sent = {c.call_sid: c.media_frames for c in result.calls}
    ended = await asyncio.to_thread(server.calls_ended, list(sent), END_LINES_TIMEOUT)
    if lost := lost_frames(title, sent, ended):
        raise RoundFailed(lost)
    elapsed = max(arrival for arrival, _ in ended.values()) - result.started
    await asyncio.sleep(SETTLE_SECONDS)
    edge = match(tap)
    connections = tap.connections
    call_seconds = calls * seconds
    fake.forget(tap)
    return Round(
        server_ms=cpu / call_seconds * 1000,
        steady_ms=steady_seconds / calls * 1000,
        runner_ms=own / call_seconds * 1000,
        busy=cpu / elapsed,
        latencies=tuple(Latency.of(samples(edge)) for _, _, samples in LATENCIES),
        deltas_heard=len(edge.delta),
        deltas_sent=edge.deltas,
        unmatched=edge.unmapped_connections,
        crossed=edge.crossed,
        answers=sum(len(c.responses) for c in connections),
        cancelled=sum(r.status == "cancelled" for c in connections for r in c.responses),
        truncates=sum(len(c.truncates) for c in connections),
        refused_truncates=sum(t.error is not None for c in connections for t in c.truncates),
        model_errors=collections.Counter(e["code"] for c in connections for e in c.errors_sent),
        log_problems=[line for line in server.lines[since:] if LOG_PROBLEM.search(line)],
        left_open=sum(not c.closed.is_set() for c in connections),
        clears_heard=sum(c.clears or 0 for c in result.calls),
        unclean=len(result.failed),
    )


async def steady_cpu(server: Server, tap: Tap, seconds: float) -> float:
    """The server's CPU seconds per second of the round once every call has connected and been
    greeted: from STEADY_SECONDS after the first frame to STEADY_END before the calls end."""
    # Polled: the simulator tells no one when its calls, all connected, start to play.
    while not any(tap.sent.values()):  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    start = time.perf_counter()
    await asyncio.sleep(STEADY_SECONDS)
    cpu, at = server.cpu_seconds(), time.perf_counter()
    await asyncio.sleep(max(0.0, start + seconds - STEADY_END - at))
    return (server.cpu_seconds() - cpu) / (time.perf_counter() - at)


async def run_rounds(args: argparse.Namespace) -> dict[Spec, list[Round]]:
    """Start the fake and every server, warm each up, then play the rounds interleaved."""
    script = Script(default_reply=Reply(audio_ms=REPLY_MS))
    firsts = numbers(max(args.calls, WARMUP_CALLS))
    servers: list[Server] = []
    specs = [spec for spec in SPECS if spec.key in args.servers]
    if args.baseline:
        specs.append(ours_at(args.baseline, BRIDGE_OURS_UVICORN))
    try:
        async with timed_fake(script) as fake:
            started = await asyncio.gather(
                *(asyncio.to_thread(Server, with_model(spec, fake.base_url)) for spec in specs),
                return_exceptions=True,
            )
            servers += [s for s in started if isinstance(s, Server)]
            for failed in started:
                if isinstance(failed, BaseException):
                    raise failed
            for server in servers if args.warmup_calls else ():
                await play(fake, server, args.warmup_calls, WARMUP_SECONDS, next(firsts))
            rounds: dict[Spec, list[Round]] = {s.spec: [] for s in servers}
            for r in range(1, args.rounds + 1):
                # Interleaved and rotated, as the stream benchmark's rounds.
                turn = (r - 1) % len(servers)
                for server in servers[turn:] + servers[:turn]:
                    result = await play(fake, server, args.calls, args.seconds, next(firsts))
                    rounds[server.spec].append(result)
                    p99 = " ".join(
                        f"({name}) {latency.p99:.2f}"
                        for (name, _, _), latency in zip(LATENCIES, result.latencies, strict=True)
                    )
                    print(
                        f"round {r}/{args.rounds} {server.spec.key}: {result.server_ms:.2f} ms CPU "
                        f"per call-second; p99 {p99} ms",
                        file=sys.stderr,
                        flush=True,
                    )
        # The fake closed first: a session a bridge left open ends, and its server can stop.
        return rounds
    finally:
        await asyncio.gather(*(asyncio.to_thread(server.stop) for server in servers))


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def table(args: argparse.Namespace, rounds: dict[Spec, list[Round]]) -> str:
    """The run's figures side by side, the goals, and what each server did."""
    cost = {s.key: _median([r.server_ms for r in rs]) for s, rs in rounds.items()}
    p99 = {
        (s.key, i): _median([r.latencies[i].p99 for r in rs])
        for s, rs in rounds.items()
        for i in range(len(LATENCIES))
    }
    lines = [
        f"voiceflow bridge benchmark {datetime.now():%Y-%m-%d %H:%M}: 127.0.0.1, "
        f"{os.cpu_count()} CPUs; simulator and fake Realtime server in one process on the same box",
        f"load: {args.calls} real-time calls x {args.seconds:g} s, each caller talking "
        f"{TALK_SECONDS:g} s at {TURN_STARTS[0]:g} and {TURN_STARTS[1]:g} s of every "
        f"{TURN_SECONDS:g} s (the second barging into the answer to the first), each call's "
        f"turns shifted by its share of {TURN_SECONDS:g} s; every answer {REPLY_MS} ms of audio "
        "at the fake's 4x real time, the greeting too; one server process each; rounds: "
        f"{args.rounds}, interleaved",
        f"command: python -m benchmarks.bridge --calls {args.calls} --seconds {args.seconds:g} "
        f"--rounds {args.rounds}"
        + (f" --servers {','.join(args.servers)}" if len(args.servers) < len(SPECS) else "")
        + (f" --baseline {args.baseline}" if args.baseline else ""),
        "",
        f"{'':{NAME_WIDTH}} {'server CPU':>10} {'steady':>7} {'runner CPU':>10} {'server':>6}   "
        f"{'(a) frame->append':>17} {'(b) delta->media':>17} {'(c) speech->clear':>17}",
        f"{'server':{NAME_WIDTH}} {'ms/call-s':>10} {'':>7} {'ms/call-s':>10} {'busy':>6}   "
        + " ".join(f"{'p50':>8} {'p99':>8}" for _ in LATENCIES)
        + "   server CPU of each round (ms/call-s)",
    ]
    for spec, rs in rounds.items():
        busy = _median([r.busy for r in rs])
        cells = [
            f"{_median([r.latencies[i].p50 for r in rs]):>8.2f} {p99[spec.key, i]:>8.2f}"
            for i in range(len(LATENCIES))
        ]
        lines.append(
            f"{server_name(spec):{NAME_WIDTH}} {cost[spec.key]:>10.2f} "
            f"{_median([r.steady_ms for r in rs]):>7.2f} "
            f"{_median([r.runner_ms for r in rs]):>10.2f} {busy:>6.0%}   "
            + " ".join(cells)
            + "   "
            + " ".join(f"{r.server_ms:.2f}" for r in rs)
            + ("   saturated: behind real time" if busy >= SATURATED else "")
        )
    lines += [
        "(medians over the rounds. server CPU over the whole round, connects and greetings "
        f"included; steady: from {STEADY_SECONDS:g} s into the calls to {STEADY_END:g} s before "
        "their end. runner: this process, the simulator and the fake. Latencies in ms, each "
        f"round's p50 and p99 over the events from {STEADY_SECONDS:g} s into the round on; (b) "
        "is each answer's first delta)",
        PIPECAT_LEFT_OUT,
        "",
        "each round's p99 (ms) [events matched, median], then the p99 over the whole round, "
        "the start-up burst included:",
    ]
    for spec, rs in rounds.items():
        parts = []
        for i, (name, _, _) in enumerate(LATENCIES):
            each = " ".join(f"{r.latencies[i].p99:.2f}" for r in rs)
            events = statistics.median(r.latencies[i].events for r in rs)
            whole = _median([r.latencies[i].p99_whole for r in rs])
            parts.append(f"({name}) {each} [{events:,.0f}] {whole:.2f}")
        lines.append(f"{spec.key:4}" + "   ".join(parts))
    lines += ["", "what each round did (median; the fake's view, and the calls'):"]
    for spec, rs in rounds.items():
        errors = sum((r.model_errors for r in rs), collections.Counter[str]())
        lines.append(
            f"{spec.key:4}answers {_median([r.answers for r in rs]):,.0f} "
            f"(cancelled {_median([r.cancelled for r in rs]):,.0f}), "
            f"clears heard {_median([r.clears_heard for r in rs]):,.0f}, "
            f"truncates {_median([r.truncates for r in rs]):,.0f} "
            f"(refused {_median([r.refused_truncates for r in rs]):,.0f}), "
            f"deltas heard {_median([r.deltas_heard for r in rs]):,.0f} of "
            f"{_median([r.deltas_sent for r in rs]):,.0f}; in all rounds: model errors "
            + (", ".join(f"{code} {n}" for code, n in errors.most_common()) or "0")
            + f", sessions left open {sum(r.left_open for r in rs)}, unclean closes "
            f"{sum(r.unclean for r in rs)}, server log warnings "
            f"{sum(len(r.log_problems) for r in rs)}, unmatched sessions "
            f"{sum(r.unmatched for r in rs)}, crossed deltas {sum(r.crossed for r in rs)}"
        )
    ratios = [
        ("au", "e", GOAL_RATIO, "ours on uvicorn against the samples' bridge on the same uvicorn"),
        ("au", "e", MOONSHOT_RATIO, "the same, against the moonshot"),
        (
            "au",
            "t",
            1.0,
            "ours on uvicorn against tac's OpenAIRealtimeProvider (its own uvicorn.run)",
        ),
        (
            "au",
            "e0",
            None,
            "the same, the samples' bridge without permessage-deflate (as the SDK connects)",
        ),
        ("du", "e", None, "the bare bridge: au/e's floor"),
        ("a", "au", None, "ours on daphne against ours on uvicorn"),
        ("au", "au@base", None, f"ours on uvicorn against the same at {args.baseline}"),
    ]
    lines += [
        "",
        "server CPU per bridged call-second (lower is better):",
        *(
            cost_line(f"{x}/{y}", cost[x] / cost[y], goal, note)
            for x, y, goal, note in ratios
            if x in cost and y in cost
        ),
        "",
        f"edge latency p99 at {args.calls} calls on one process (goal for ours: <= "
        f"{GOAL_P99_MS:g} ms each; du, the floor: two loopback hops and this process's turns):",
    ]
    for i, (name, what, _) in enumerate(LATENCIES):
        verdicts = []
        for spec in rounds:
            figure = p99[spec.key, i]
            verdict = ""
            if spec.key in OURS_KEYS:
                verdict = " met" if figure <= GOAL_P99_MS else " NOT met"
            verdicts.append(f"{spec.key} {figure:.2f}{verdict}")
        lines.append(f"({name}) {what:24} " + ", ".join(verdicts))
    for spec, rs in rounds.items():
        seen = [line for r in rs for line in r.log_problems]
        if seen:
            lines += ["", f"{spec.key}: {len(seen)} warning lines in its log, the first:"]
            lines += [f"  {line}" for line in seen[:5]]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bridge", description=__doc__)
    parser.add_argument("--calls", type=int, default=100, help="real-time calls per round")
    parser.add_argument("--seconds", type=float, default=20, help="each call's length")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per server (median)")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 10 calls of 6 s, 1 round, no warm-up"
    )
    keys = [spec.key for spec in SPECS]
    parser.add_argument(
        "--servers",
        type=lambda given: given.split(","),
        default=keys,
        help=f"which servers, by key, comma-separated (default: all, {','.join(keys)})",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also ours on uvicorn from this checkout (e.g. a git worktree of main), as au@base: "
        "what a change buys, measured in the same rounds",
    )
    args = parser.parse_args(argv)
    if args.baseline and not (args.baseline / "example_project").is_dir():
        parser.error(f"--baseline {args.baseline} is not a checkout of this project")
    if unknown := [key for key in args.servers if key not in keys]:
        parser.error(f"--servers: no server {', '.join(unknown)}; the servers: {', '.join(keys)}")
    args.warmup_calls = WARMUP_CALLS
    if args.quick:
        args.calls, args.seconds, args.rounds, args.warmup_calls = 10, 6.0, 1, 0
    if not 1 <= args.calls <= callsim.MAX_CALLS or args.rounds < 1:
        parser.error(f"--calls must be 1..{callsim.MAX_CALLS}, --rounds at least 1")
    if args.seconds < MIN_SECONDS:
        parser.error(f"--seconds must be at least {MIN_SECONDS:g}: a turn, and a steady state")
    missing = [m for m in ("fastapi", "openai", "tac") if importlib.util.find_spec(m) is None]
    if missing:
        parser.error(
            f"the bridge benchmark needs {', '.join(missing)}: pip install -e '.[test,bench]'"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(table(args, asyncio.run(run_rounds(args))))
    except RuntimeError as exc:  # RoundFailed, or a server that never finished its calls
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
