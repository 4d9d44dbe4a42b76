"""Frames/s processed by our consumer under daphne and uvicorn against a naive consumer, a raw
server and the peers (the samples' FastAPI endpoint, pipecat); with --realtime, the server CPU a
real-time call costs ours under daphne, uvicorn, granian and hypercorn, the bare app and the
peers, and whether each of our servers enforces a websocket size limit; with --bidirectional,
what a call that hears audio costs against one that only listens.

    python -m benchmarks.stream [--calls 200] [--frames 250] [--rounds 5] [--idle-calls 1000]
    python -m benchmarks.stream --realtime [--calls 200] [--seconds 10] [--rounds 5]
    python -m benchmarks.stream --bidirectional [--calls 100] [--seconds 10] [--speakers 50]

Each round plays the same load (voiceflow_channels.testing.callsim) at each server in turn. A
round counts only if every call's server-side frame count equals what was sent; otherwise the
benchmark stops with exit status 1. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from benchmarks.idle import idle_calls
from benchmarks.report import SATURATED, cost_line, lost_frames, numbers, server_name
from benchmarks.servers import (
    BARE,
    BARE_UVICORN,
    END_LINES_TIMEOUT,
    FASTAPI_PEER,
    NAIVE,
    OURS,
    OURS_GRANIAN,
    OURS_HYPERCORN,
    OURS_NO_LAYER,
    OURS_UVICORN,
    PEER_MODULES,
    PIPECAT_PEER,
    RAW,
    SPEAKING,
    Server,
    Spec,
    ours_at,
    ours_on_redis,
    redis_server,
    running,
)
from benchmarks.size_limit import size_limit
from benchmarks.speaking_asgi import SPEAKER
from voiceflow_channels.testing import SimResult, callsim
from voiceflow_channels.testing.script import FRAMES_PER_SECOND, frames_for

SPECS = (OURS, NAIVE, RAW, BARE, OURS_UVICORN, BARE_UVICORN, FASTAPI_PEER, PIPECAT_PEER)
# Real time: ours on each server the issue names, the bare app (the ceiling) on daphne and
# uvicorn, and the peers; (b) would need more than a core at 200 calls.
REALTIME_SPECS = (
    OURS,
    OURS_UVICORN,
    OURS_GRANIAN,
    OURS_HYPERCORN,
    BARE,
    BARE_UVICORN,
    FASTAPI_PEER,
    PIPECAT_PEER,
)
# Ours, whose end lines say how a call ended: the servers whose size limit is probed.
OURS_KEYS = frozenset({"a", "au", "g", "h"})
NAME_WIDTH = 38  # the longest: "e. FastAPI endpoint (samples), uvicorn"
WARMUP_CALLS = 20
WARMUP_FRAMES = 50
IDLE_TIMEOUT = 300


class LostFrames(RuntimeError):
    """A server did not handle every frame sent, or a call could not send them all."""


@dataclass(frozen=True)
class Round:
    """One server's share of one round."""

    frames_per_second: float
    server_us_per_frame: float
    server_busy: float
    client_busy: float
    unclean: int
    client_us_per_frame: float
    held_back: int  # real-time ticks the simulator waited for the server to read

    @property
    def server_ms_per_call_second(self) -> float:
        return self.server_us_per_frame * FRAMES_PER_SECOND / 1000

    @property
    def client_ms_per_call_second(self) -> float:
        return self.client_us_per_frame * FRAMES_PER_SECOND / 1000


def measure(server: Server, calls: int, frames: int, first: int, realtime: bool = False) -> Round:
    """Play the load at `server` and check, call by call, that it handled every media frame.

    Timed from the first connect to the last call's end line arriving from the server: its own
    completion, since it handles a connection's frames in order before that call's stop. Flat
    out, the frames are rendered before the first connect, and the server's CPU counted from then
    on; in real time each call sends 50 frames a second.
    """
    seconds = frames / FRAMES_PER_SECOND
    cpu = server.cpu_seconds()
    result = asyncio.run(callsim.run(server.url, calls, seconds, realtime, first=first))
    cpu = server.cpu_seconds() - cpu
    short = [c for c in result.calls if c.media_frames != frames]
    if short:
        raise LostFrames(f"{server.spec.title}: {len(short)} calls did not send: {short[0]}")
    sent = {c.call_sid: c.media_frames for c in result.calls}
    ended = server.calls_ended(list(sent), END_LINES_TIMEOUT)
    if lost := lost_frames(server.spec.title, sent, ended):
        raise LostFrames(lost)
    elapsed = max(arrival for arrival, _ in ended.values()) - result.started
    return Round(
        frames_per_second=result.media_frames / elapsed,
        server_us_per_frame=cpu / result.media_frames * 1e6,
        server_busy=cpu / elapsed,
        client_busy=result.cpu_seconds / elapsed,
        unclean=len(result.failed),
        client_us_per_frame=result.cpu_seconds / result.media_frames * 1e6,
        held_back=result.held_back,
    )


@dataclass(frozen=True)
class Bidirectional:
    """One round of the bidirectional profile: server CPU with every call listening, and with
    `speakers` of the same number of calls hearing audio the whole call."""

    listening_cpu: float
    mixed_cpu: float
    audio_ms: float


def realtime_cpu(server: Server, calls: int, speakers: int, seconds: float, first: int) -> tuple:
    """Server CPU seconds for `calls` real-time calls, `speakers` of them hearing audio, and the
    audio those heard; checks every frame arrived and no speaker's audio underran."""

    async def play() -> list[SimResult]:
        runs = [callsim.run(server.url, calls - speakers, seconds, True, first=first)]
        if speakers:
            runs.append(
                callsim.run(server.url, speakers, seconds, True, SPEAKER, first=first + calls)
            )
        return await asyncio.gather(*runs)

    cpu = server.cpu_seconds()
    results = asyncio.run(play())
    cpu = server.cpu_seconds() - cpu
    every = [c for result in results for c in result.calls]
    failed = [c for c in every if not c.ok]
    if failed:
        raise LostFrames(f"{server.spec.title}: {len(failed)} calls failed: {failed[0]}")
    ended = server.calls_ended([c.call_sid for c in every], END_LINES_TIMEOUT)
    lost = [c for c in every if ended[c.call_sid][1] != c.media_frames]
    if lost:
        raise LostFrames(f"{server.spec.title}: {len(lost)} calls lost frames: {lost[0]}")
    heard = [c for c in every if c.audio_ms]
    if len(heard) != speakers or any(c.underruns for c in heard):
        raise LostFrames(
            f"{server.spec.title}: {len(heard)} of {speakers} speakers heard audio; underruns "
            f"{[c.underruns for c in heard if c.underruns]}"
        )
    return cpu, sum(c.audio_ms for c in heard)


def run_bidirectional(args: argparse.Namespace) -> list[Bidirectional]:
    server = Server(SPEAKING)
    firsts = numbers(2 * args.calls)
    try:
        realtime_cpu(server, WARMUP_CALLS, WARMUP_CALLS // 5, 1.0, next(firsts))
        rounds = []
        for r in range(1, args.rounds + 1):
            listening, _ = realtime_cpu(server, args.calls, 0, args.seconds, next(firsts))
            mixed, audio = realtime_cpu(
                server, args.calls, args.speakers, args.seconds, next(firsts)
            )
            rounds.append(Bidirectional(listening, mixed, audio))
            print(
                f"round {r}/{args.rounds}: listening {listening:.2f}s CPU, mixed {mixed:.2f}s",
                file=sys.stderr,
                flush=True,
            )
        return rounds
    finally:
        server.stop()


def bidirectional_table(args: argparse.Namespace, rounds: list[Bidirectional]) -> str:
    call_seconds = args.calls * args.seconds
    listening = statistics.median(r.listening_cpu for r in rounds) / call_seconds * 1000
    extra = statistics.median(r.mixed_cpu - r.listening_cpu for r in rounds)
    playing = listening + extra / (args.speakers * args.seconds) * 1000
    heard = statistics.median(r.audio_ms for r in rounds) / args.speakers / 1000
    return "\n".join(
        [
            f"voiceflow bidirectional profile {datetime.now():%Y-%m-%d %H:%M}: 127.0.0.1, "
            f"{os.cpu_count()} CPUs, client on the same box",
            f"load: {args.calls} real-time calls x {args.seconds:g} s, all listening, then "
            f"{args.speakers} of them hearing audio the whole call (mark-clocked, the simulator "
            f"echoing marks as Twilio does); rounds: {args.rounds}",
            f"command: python -m benchmarks.stream --bidirectional --calls {args.calls} "
            f"--seconds {args.seconds:g} --speakers {args.speakers} --rounds {args.rounds}",
            "",
            f"{'':34}{'server CPU, ms per call-second':>32}",
            f"{'a listening call':34}{listening:>32.2f}",
            f"{'a call hearing audio':34}{playing:>32.2f}   ({playing / listening:.2f}x)",
            f"each speaker was sent {heard:.1f} s of audio in its {args.seconds:g} s, with no "
            "underrun; every inbound frame arrived",
            "CPU per round (s), listening / mixed: "
            + ", ".join(f"{r.listening_cpu:.2f} / {r.mixed_cpu:.2f}" for r in rounds),
        ]
    )


def idle_rss_per_call(calls: int, first: int) -> tuple[float, int, int]:
    """KiB of daphne RSS per open call of ours at `calls` idle calls, and RSS before and during."""
    server = Server(OURS)
    try:
        measure(server, WARMUP_CALLS, WARMUP_FRAMES, first)
        before = server.rss()
        since = len(server.lines)

        async def hold() -> int:
            async with idle_calls(server.url, calls, first + WARMUP_CALLS):
                # Every start logged: the server has handled each call's frames so far.
                await asyncio.to_thread(
                    server.wait_for, r"voiceflow start callSid=", calls, IDLE_TIMEOUT, since
                )
                return server.rss()

        during = asyncio.run(hold())
    finally:
        server.stop()
    return (during - before) / calls / 1024, before, during


def run_rounds(
    args: argparse.Namespace,
    specs: tuple[Spec, ...],
    limits: dict[str, tuple[bool, str]] | None = None,
) -> dict[Spec, list[Round]]:
    """Warm every server up, then play the rounds; with `limits`, first probe each of ours for a
    websocket size limit into it (benchmarks.size_limit)."""
    firsts = numbers(max(args.calls, WARMUP_CALLS))
    frames = frames_for(args.seconds) if args.realtime else args.frames
    with running(specs) as servers:
        for server in servers:
            measure(server, WARMUP_CALLS, WARMUP_FRAMES, next(firsts))
            if limits is not None and server.spec.key in OURS_KEYS:
                limits[server.spec.key] = size_limit(server, next(firsts))
        rounds: dict[Spec, list[Round]] = {s.spec: [] for s in servers}
        for r in range(1, args.rounds + 1):
            # Interleaved, so a noisy minute hurts every server alike; and rotated, so no server
            # always follows the same one.
            turn = (r - 1) % len(servers)
            for server in servers[turn:] + servers[:turn]:
                result = measure(server, args.calls, frames, next(firsts), args.realtime)
                rounds[server.spec].append(result)
                figure = (
                    f"{result.server_ms_per_call_second:.2f} ms CPU per call-second"
                    if args.realtime
                    else f"{result.frames_per_second:,.0f} frames/s"
                )
                print(
                    f"round {r}/{args.rounds} {server.spec.key}: {figure}",
                    file=sys.stderr,
                    flush=True,
                )
        return rounds


def table(args: argparse.Namespace, rounds: dict[Spec, list[Round]], rss: tuple | None) -> str:
    median = {s.key: statistics.median(r.frames_per_second for r in rs) for s, rs in rounds.items()}
    lines = [
        f"voiceflow stream benchmark {datetime.now():%Y-%m-%d %H:%M}: 127.0.0.1, "
        f"{os.cpu_count()} CPUs, client on the same box",
        f"load: {args.calls} concurrent calls x {args.frames} media frames (160-byte mu-law, "
        f"plus connected, start, marks, dtmf, stop), flat-out; rounds: {args.rounds}, interleaved",
        f"command: python -m benchmarks.stream --calls {args.calls} --frames {args.frames} "
        f"--rounds {args.rounds} --idle-calls {args.idle_calls}"
        + (" --layers" if args.layers else "")
        + (" --layers-only" if args.layers_only else "")
        + (f" --baseline {args.baseline}" if args.baseline else ""),
        "",
        f"{'server':{NAME_WIDTH}} {'frames/s':>9} {'CPU us/frame':>12} {'server busy':>11} "
        f"{'client busy':>11} {'unclean closes':>14}   frames/s of each round",
    ]
    for spec, rs in rounds.items():
        lines.append(
            f"{server_name(spec):{NAME_WIDTH}} {median[spec.key]:>9,.0f} "
            f"{statistics.median(r.server_us_per_frame for r in rs):>12.1f} "
            f"{statistics.median(r.server_busy for r in rs):>11.0%} "
            f"{statistics.median(r.client_busy for r in rs):>11.0%} "
            f"{sum(r.unclean for r in rs):>14}   "
            + " ".join(f"{r.frames_per_second:,.0f}" for r in rs)
        )
    lines.append("(medians; CPU us/frame: the server's user+system CPU over media frames handled)")
    # CPU per frame is the steadier figure on a shared box: what the server would do with a core.
    cpu = {s.key: statistics.median(r.server_us_per_frame for r in rs) for s, rs in rounds.items()}
    calls_checked = args.calls * args.rounds + WARMUP_CALLS
    lines.append(
        f"lost frames: 0 (every call's server-side count equals what was sent; "
        f"{calls_checked} calls per server)"
    )
    if "b" in median:
        lines += [
            "",
            f"{'ratio':8}{'frames/s':>10}{'CPU/frame':>14}",
            _ratio("a/b", median["a"] / median["b"], cpu["b"] / cpu["a"], 3.0),
            _ratio("a/c", median["a"] / median["c"], cpu["c"] / cpu["a"], 0.5),
            _ratio("a/d", median["a"] / median["d"], cpu["d"] / cpu["a"], 0.9)
            + "   (d: a bare ASGI app under the same daphne)",
        ]
    if rss is not None:
        per_call, before, during = rss
        lines.append(
            f"RSS per idle call (a, {args.idle_calls} calls after connected+start): "
            f"{per_call:.1f} KiB (daphne RSS {before / 2**20:.1f} MiB -> {during / 2**20:.1f} MiB)"
        )
    if "e" in median:
        lines += [
            "",
            "CPU per frame, ours against the peers on the same uvicorn (lower is better):",
            cost_line("au/e", cpu["au"] / cpu["e"], 0.8, "(e: the samples' FastAPI endpoint)"),
            cost_line("du/e", cpu["du"] / cpu["e"], None, "(du: the bare app, what any app costs)"),
            cost_line("au/p", cpu["au"] / cpu["p"], 0.2, "(p: pipecat's Twilio edge)"),
        ]
    if "a@base" in median:
        ratio, cpu_ratio = median["a"] / median["a@base"], cpu["a@base"] / cpu["a"]
        lines += [
            "",
            f"a/a@base{ratio:>10.2f}{cpu_ratio:>14.2f}   this checkout against "
            f"{args.baseline} (inbound only; goal: no regression past 5%)",
        ]
    if "a0" in median:
        lines += ["", "what the channel layer costs the media path (goal: within 10%):"]
        for key, name in (("a", "in-memory layer"), ("ar", "Redis layer")):
            ratio, cpu_ratio = median[key] / median["a0"], cpu["a0"] / cpu[key]
            verdict = "within 10%" if min(ratio, cpu_ratio) >= 0.9 else "MORE than 10%"
            lines.append(
                f"{key}/a0    {ratio:>6.2f}{cpu_ratio:>14.2f}   {name} vs no layer: {verdict}"
            )
    return "\n".join(lines)


def realtime_table(
    args: argparse.Namespace,
    rounds: dict[Spec, list[Round]],
    limits: dict[str, tuple[bool, str]],
) -> str:
    """Server CPU per second of a real-time call, side by side, the ratios against the goals,
    and which of the other servers would qualify for support."""
    cost = {
        s.key: statistics.median(r.server_ms_per_call_second for r in rs)
        for s, rs in rounds.items()
    }
    lines = [
        f"voiceflow real-time benchmark {datetime.now():%Y-%m-%d %H:%M}: 127.0.0.1, "
        f"{os.cpu_count()} CPUs, client on the same box",
        f"load: {args.calls} real-time calls x {args.seconds:g} s (50 media frames/s each, plus "
        f"connected, start, marks, dtmf, stop), one server process; rounds: {args.rounds}, "
        "interleaved",
        f"command: python -m benchmarks.stream --realtime --calls {args.calls} "
        f"--seconds {args.seconds:g} --rounds {args.rounds}",
        "",
        f"{'':{NAME_WIDTH}} {'server CPU':>10} {'simulator CPU':>13} {'server':>6} "
        f"{'held-back':>9} {'unclean':>7}   server CPU of each round",
        f"{'server':{NAME_WIDTH}} {'ms/call-s':>10} {'ms/call-s':>13} {'busy':>6} "
        f"{'ticks':>9} {'closes':>7}   (ms/call-s)",
    ]
    for spec, rs in rounds.items():
        busy = statistics.median(r.server_busy for r in rs)
        lines.append(
            f"{server_name(spec):{NAME_WIDTH}} {cost[spec.key]:>10.2f} "
            f"{statistics.median(r.client_ms_per_call_second for r in rs):>13.2f} "
            f"{busy:>6.0%} {sum(r.held_back for r in rs):>9} "
            f"{sum(r.unclean for r in rs):>7}   "
            + " ".join(f"{r.server_ms_per_call_second:.2f}" for r in rs)
            + ("   saturated: behind real time" if busy >= SATURATED else "")
        )
    lines += [
        "(medians; ms/call-s: ms of CPU per second of one call's audio, i.e. per 50 frames; "
        f"server busy: its CPU over the round's wall time, >= {SATURATED:.0%} means it fell "
        "behind)",
        f"lost frames: 0 (every call's server-side count equals what was sent; "
        f"{args.calls * args.rounds + WARMUP_CALLS} calls per server)",
        "",
        "server CPU per real-time call (lower is better):",
        cost_line("au/e", cost["au"] / cost["e"], 0.9, "ours on uvicorn against the FastAPI shape"),
        cost_line("du/e", cost["du"] / cost["e"], None, "the bare app on uvicorn: au/e's floor"),
        cost_line("a/au", cost["a"] / cost["au"], 1.3, "ours on daphne against ours on uvicorn"),
        cost_line("d/du", cost["d"] / cost["du"], None, "the bare app, daphne against uvicorn"),
        cost_line("au/p", cost["au"] / cost["p"], None, "ours on uvicorn against pipecat"),
        "",
        "the other servers against ours on daphne (support needs both: cheaper, a size limit):",
    ]
    for key in ("g", "h"):
        cheaper = cost[key] < cost["a"]
        enforced = limits[key][0]
        verdict = "qualifies" if cheaper and enforced else "does not qualify"
        lines.append(
            f"{key}/a{cost[key] / cost['a']:>12.2f}x   {'cheaper' if cheaper else 'NOT cheaper'}; "
            f"{verdict}"
        )
    lines += ["", "websocket size limit (a 1 MiB message on one call, before the rounds):"]
    lines += [f"{key:8}{what}" for key, (_, what) in limits.items()]
    return "\n".join(lines)


def _ratio(name: str, by_rate: float, by_cpu: float, goal: float | None) -> str:
    line = f"{name:8}{by_rate:>10.2f}{by_cpu:>14.2f}"
    if goal is None:
        return line
    by_rate_verdict = "met" if by_rate >= goal else "NOT met"
    by_cpu_verdict = "met" if by_cpu >= goal else "NOT met"
    return f"{line}   goal >= {goal}: {by_rate_verdict} by frames/s, {by_cpu_verdict} by CPU"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream", description=__doc__)
    parser.add_argument(
        "--calls", type=int, help="concurrent calls per round (200; bidirectional: 100)"
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="only the real-time profile: --calls real-time calls of --seconds at ours on daphne, "
        "uvicorn, granian and hypercorn, the bare app and the peers, server CPU per call-second",
    )
    parser.add_argument("--frames", type=int, default=250, help="media frames per call")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per server (median)")
    parser.add_argument("--idle-calls", type=int, default=1000, help="calls held for the RSS")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 20 calls x 50 frames, 1 round, 50 idle"
    )
    parser.add_argument(
        "--layers-only",
        action="store_true",
        help="only our consumer with no layer, in-memory and on Redis (no b/c/d, no idle RSS)",
    )
    parser.add_argument(
        "--layers",
        action="store_true",
        help="also run our consumer with no layer (a0) and on a Redis layer (ar, needs "
        "redis-server), to show what the layer costs the media path",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="only our consumer, against the same consumer from this checkout (e.g. a git "
        "worktree of the last release) in the same rounds, as a@base",
    )
    parser.add_argument(
        "--bidirectional",
        action="store_true",
        help="only the bidirectional profile: real-time calls, --speakers of them hearing audio",
    )
    parser.add_argument(
        "--seconds", type=float, default=10, help="real-time and bidirectional: call length"
    )
    parser.add_argument(
        "--speakers", type=int, help="bidirectional: calls hearing audio (default half)"
    )
    args = parser.parse_args(argv)
    if args.calls is None:
        args.calls = 100 if args.bidirectional else 200
    if args.quick:
        args.calls, args.frames, args.rounds, args.idle_calls = 20, 50, 1, 50
        args.seconds = 2
    if args.speakers is None:
        args.speakers = args.calls // 2
    if not 1 <= args.speakers < args.calls:
        parser.error("--speakers must be at least 1 and fewer than --calls")
    if args.baseline and not (args.baseline / "example_project").is_dir():
        parser.error(f"--baseline {args.baseline} is not a checkout of this project")
    if args.realtime and (args.bidirectional or args.layers or args.layers_only or args.baseline):
        parser.error("--realtime runs alone: no --bidirectional, --layers, --baseline")
    peers = not (args.bidirectional or args.layers_only or args.baseline)
    missing = [m for m in PEER_MODULES if importlib.util.find_spec(m) is None] if peers else []
    if missing:
        parser.error(
            f"the peers and other servers (e, p, g, h) need {', '.join(missing)}: "
            "pip install -e '.[bench]', or run "
            "--layers-only or --baseline for ours alone"
        )
    for name in ("calls", "frames", "rounds", "idle_calls"):
        if not 1 <= getattr(args, name) <= callsim.MAX_CALLS:
            parser.error(f"--{name.replace('_', '-')} must be 1..{callsim.MAX_CALLS}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(report(args))
    except RuntimeError as exc:  # LostFrames, or a server that never finished its calls
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


def report(args: argparse.Namespace) -> str:
    """Run what `args` ask for and return its table."""
    if args.realtime:
        limits: dict[str, tuple[bool, str]] = {}
        return realtime_table(args, run_rounds(args, REALTIME_SPECS, limits), limits)
    if args.bidirectional:
        return bidirectional_table(args, run_bidirectional(args))
    if args.baseline:
        rounds = run_rounds(args, (OURS, ours_at(args.baseline)))
    elif args.layers or args.layers_only:
        others = (OURS,) if args.layers_only else SPECS
        with redis_server() as redis_url:
            rounds = run_rounds(args, (*others, OURS_NO_LAYER, ours_on_redis(redis_url)))
    else:
        rounds = run_rounds(args, SPECS)
    only_ours = args.layers_only or args.baseline
    rss = None if only_ours else idle_rss_per_call(args.idle_calls, first=1)
    return table(args, rounds, rss)


if __name__ == "__main__":
    sys.exit(main())
