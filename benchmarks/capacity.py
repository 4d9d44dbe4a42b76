"""Capacity: how many real-time calls one server process (or two, on one Redis) holds.

    python -m benchmarks.capacity [--server daphne|uvicorn] [--processes 1|2|1,2]
                                  [--start 100] [--step 50] [--max 500] [--seconds 20]

Each step plays N real-time calls (50 frames/s each, as Twilio sends) spread over the server
processes, a fifth of them hearing audio their whole call: the benchmark, as a third process on
the same Redis, sends each of those a `wait.start` and then `audio.play` through the channel
layer, so waits and audio must reach the right process and call. A step passes when 99% of the
calls' inbound lag p99 (`lag_p99_ms=`, measured by the server against Twilio's media.timestamp)
is at most --lag-ms, no frame is lost, and every speaker heard its audio with no underrun. The
capacity is the most calls of a passing step; steps go up until one fails or --max. With
`--processes 1,2`, one process and then two, and how capacity grew from one to the other.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime

from channels.layers import get_channel_layer

from benchmarks.servers import DAPHNE_ENV, Server, Spec, redis_server, running
from voiceflow_channels.startup import freeze_startup_objects
from voiceflow_channels.testing import SimResult, SimulatedCall, callsim

LAG = re.compile(r"\blag_p99_ms=(\d+)")
CALL_SID = re.compile(r"callSid=(\w+)")
SPEAKER_SHARE = 5  # one call in five hears audio
END_LINES_TIMEOUT = 120


@dataclass(frozen=True)
class StepResult:
    calls: int
    lag_p99_ms: float  # the 99th percentile of the calls' own lag p99
    worst_lag_ms: int
    underruns: int
    server_cpu_ms_per_call_second: float
    sim_cpu_ms_per_call_second: float
    passed: bool


def server_spec(server: str, redis_url: str, n: int) -> Spec:
    argv = ("-m", "example_project", "--server", server, "-b", "127.0.0.1", "-p", "{port}")
    env = (
        ("VOZ_FEATURE_VOICE_FLOW_A", "1"),
        *DAPHNE_ENV,
        ("REDIS_URL", redis_url),
        ("VOICEFLOW_MAX_STREAMS", "5000"),
    )
    return Spec(f"s{n}", f"ours, {server}, process {n}", argv, env)


async def speak_to(
    server: Server, since: int, calls: int, call_sids: list[str], seconds: float
) -> None:
    """From this process, over Redis: once the server has logged the start of its `calls` calls
    (from its log line `since` on), a wait and then the whole call's audio to each of
    `call_sids`."""
    from voiceflow_channels import audio, wait

    await asyncio.to_thread(server.wait_for, "voiceflow start callSid=", calls, 120, since)
    mulaw = bytes(range(256)) * int(seconds * 8000 / 256)
    for call_sid in call_sids:
        await wait.astart(call_sid, "capacity")
        await audio.aplay(call_sid, mulaw, label="speech")


async def play_step(
    servers: list[Server], calls: int, seconds: float, first: int
) -> list[tuple[Server, SimResult]]:
    """N calls spread over the servers, a fifth of them speakers; each run with its server."""
    speakers = calls // SPEAKER_SHARE
    runs: list[tuple[Server, int, int, str]] = []  # server, first call number, calls, tenant
    n = first
    for i, server in enumerate(servers):
        mine = calls // len(servers) + (i < calls % len(servers))
        talking = speakers // len(servers) + (i < speakers % len(servers))
        runs += [(server, n, mine - talking, "t1"), (server, n + mine, talking, "speaker")]
        n += mine + talking
    runs = [run for run in runs if run[2]]
    plays = [
        callsim.run(s.url, count, seconds, True, tenant, first=n) for s, n, count, tenant in runs
    ]
    speak = [
        speak_to(
            server,
            len(server.lines),
            sum(count for s, _, count, _ in runs if s is server),
            [
                SimulatedCall(k).call_sid
                for s, n, count, tenant in runs
                if s is server and tenant == "speaker"
                for k in range(n, n + count)
            ],
            seconds,
        )
        for server in servers
    ]
    results = await asyncio.gather(*plays, *speak)
    return [(run[0], result) for run, result in zip(runs, results, strict=False)]


def measure(
    servers: list[Server], calls: int, seconds: float, first: int, lag_ms: int
) -> StepResult:
    cpu = [s.cpu_seconds() for s in servers]
    own = time.process_time()  # the simulator's runs share this process: measured once
    played = asyncio.run(play_step(servers, calls, seconds, first))
    own = time.process_time() - own
    server_cpu = sum(s.cpu_seconds() - c for s, c in zip(servers, cpu, strict=True))
    every = [c for _, result in played for c in result.calls]
    lags: list[int] = []
    lost = 0
    for server, result in played:
        ended = server.calls_ended([c.call_sid for c in result.calls], END_LINES_TIMEOUT)
        lost += sum(ended[c.call_sid][1] != c.media_frames for c in result.calls)
        wanted = {c.call_sid for c in result.calls}
        for line in server.lines:
            sid = CALL_SID.search(line)
            if sid and sid[1] in wanted and "call ended" in line:
                found = LAG.search(line)
                lags.append(int(found[1]) if found else 10_000)
    speakers = [c for c in every if c.audio_ms]
    underruns = sum(c.underruns or 0 for c in speakers)
    lag_p99 = statistics.quantiles(lags, n=100)[98] if len(lags) > 1 else float(lags[0])
    call_seconds = calls * seconds
    passed = (
        all(c.ok for c in every)
        and not lost
        and lag_p99 <= lag_ms
        and len(speakers) == calls // SPEAKER_SHARE
        and underruns == 0
    )
    return StepResult(
        calls,
        lag_p99,
        max(lags),
        underruns,
        server_cpu / call_seconds * 1000,
        own / call_seconds * 1000,
        passed,
    )


def run_steps(args: argparse.Namespace, redis_url: str) -> list[StepResult]:
    specs = (server_spec(args.server, redis_url, n) for n in range(1, args.processes + 1))
    with running(specs) as servers:
        os.environ["REDIS_URL"] = redis_url  # this process sends the waits and audio
        import django

        django.setup()
        # This process plays Twilio too: a full collection over Django's objects would hold
        # every call's frames back and show as the server's lag.
        freeze_startup_objects()
        measure(servers, 20, 2.0, 1, args.lag_ms)  # warm-up
        steps = []
        first = 1_000
        for calls in range(args.start, args.max + 1, args.step):
            step = measure(servers, calls, args.seconds, first, args.lag_ms)
            first += calls + 10
            steps.append(step)
            print(
                f"{calls} calls: lag p99 {step.lag_p99_ms:.0f} ms, underruns {step.underruns}, "
                f"{'pass' if step.passed else 'FAIL'}",
                file=sys.stderr,
                flush=True,
            )
            if not step.passed:
                break
        return steps


def table(args: argparse.Namespace, steps: list[StepResult]) -> str:
    lines = [
        f"voiceflow capacity {datetime.now():%Y-%m-%d %H:%M}: 127.0.0.1, {os.cpu_count()} CPUs, "
        "simulator on the same box",
        f"server: ours on {args.server}, {args.processes} process(es) on one Redis; real-time "
        f"calls of {args.seconds:g} s, a fifth hearing audio sent over the layer by a third "
        "process",
        f"command: python -m benchmarks.capacity --server {args.server} --processes "
        f"{args.processes} --start {args.start} --step {args.step} --max {args.max} "
        f"--seconds {args.seconds:g} --lag-ms {args.lag_ms}",
        "",
        f"{'calls':>6} {'lag p99':>8} {'worst':>7} {'underruns':>9} "
        f"{'server CPU ms/call-s':>21} {'simulator CPU ms/call-s':>24}",
    ]
    for s in steps:
        lines.append(
            f"{s.calls:>6} {s.lag_p99_ms:>6.0f}ms {s.worst_lag_ms:>5}ms {s.underruns:>9} "
            f"{s.server_cpu_ms_per_call_second:>21.2f} {s.sim_cpu_ms_per_call_second:>24.2f}"
            + ("" if s.passed else "   FAIL")
        )
    lines.append(
        f"capacity: {capacity(steps)} real-time calls with lag p99 <= {args.lag_ms} ms and no "
        "underrun"
        + ("" if not steps or not steps[-1].passed else f" (the most tried: --max {args.max})")
    )
    return "\n".join(lines)


def process_counts(text: str) -> tuple[int, ...]:
    """--processes: 1, 2, or 1,2 (both, in that order)."""
    counts = {"1": (1,), "2": (2,), "1,2": (1, 2)}.get(text.replace(" ", ""))
    if counts is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not 1, 2 or 1,2")
    return counts


def capacity(steps: list[StepResult]) -> int:
    return max((s.calls for s in steps if s.passed), default=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__)
    parser.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")
    parser.add_argument(
        "--processes",
        type=process_counts,
        default=(1,),
        help="server processes on one Redis: 1, 2, or 1,2 to compare them (default 1)",
    )
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--step", type=int, default=50)
    parser.add_argument("--max", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--lag-ms", type=int, default=40)
    args = parser.parse_args(argv)
    if not 1 <= args.start <= args.max <= callsim.MAX_CALLS or args.step < 1:
        parser.error("need 1 <= --start <= --max and --step >= 1")
    found = {}
    with redis_server() as redis_url:
        for count in args.processes:
            run = argparse.Namespace(**{**vars(args), "processes": count})
            steps = run_steps(run, redis_url)
            found[count] = capacity(steps)
            print(table(run, steps), flush=True)
            # The next run's calls reuse these callSids: nothing of this one may reach them.
            asyncio.run(get_channel_layer().flush())
    if len(found) == 2:
        growth = f"{found[2] / found[1]:.2f}x" if found[1] else "n/a"
        print(f"\ncapacity from 1 to 2 processes: {found[1]} -> {found[2]} calls ({growth})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    sys.exit(main())
