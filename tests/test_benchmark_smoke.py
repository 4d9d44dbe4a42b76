"""The stream benchmark still runs end to end (tiny load; no figures are asserted)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from benchmarks import resume, stream
from benchmarks.servers import PEER_MODULES
from tests.servers import ROOT

# The peers' packages are the `bench` extra, not the app's or the tests' dependencies.
needs_peers = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in PEER_MODULES),
    reason="the peers need the bench extra: pip install -e '.[bench]'",
)


@needs_peers
def test_quick_benchmark_checks_every_frame_and_prints_the_table(capsys):
    assert stream.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "lost frames: 0" in out
    for row in (
        "a. TwilioStreamConsumer",
        "b. naive",
        "c. raw websockets",
        "au. TwilioStreamConsumer, uvicorn",
        "e. FastAPI endpoint",
        "p. pipecat Twilio edge",
        "a/b",
        "a/c",
        "du. bare ASGI app, uvicorn",
        "au/e",
        "du/e",
        "au/p",
    ):
        assert row in out


@needs_peers
def test_quick_realtime_profile_prints_cpu_per_call_second_and_the_goals(capsys):
    assert stream.main(["--realtime", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "lost frames: 0" in out
    lines = out.splitlines()
    assert "ms/call-s" in out
    for row in ("a. ", "au. ", "g. ", "h. ", "d. ", "du. ", "e. ", "p. "):
        assert any(line.startswith(row) for line in lines), row
    for ratio in ("au/e", "a/au"):
        assert any(line.startswith(ratio) and "goal <= " in line for line in lines)
    for floor in ("du/e", "d/du", "g/a", "h/a"):
        assert any(line.startswith(floor) for line in lines), floor
    # The size-limit probe: ours under the launcher refuses a 1 MiB message on either server.
    for server in ("a", "au"):
        assert re.search(rf"^{server} +enforced: ", out, re.MULTILINE), server
    for server in ("g", "h"):
        assert re.search(rf"^{server} +(none|broken|enforced): ", out, re.MULTILINE), server


@needs_peers
def test_quick_bridge_benchmark_prints_every_server_with_figures_and_the_goals(capsys):
    from benchmarks import bridge

    assert bridge.main(["--quick"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for key in ("a", "au", "e", "e0", "t", "du"):
        row = next((line for line in lines if line.startswith(f"{key}. ")), None)
        assert row is not None, key
        # CPU, steady CPU and the runner's before the server's busy %; after it, p50 and p99 of
        # each of the three edge latencies, then each round's CPU.
        before, _, after = row.partition("%")
        assert len(re.findall(r"\d+\.\d\d", before)) == 3, row
        assert len(re.findall(r"\d+\.\d\d", after)) >= 6 + 1, row
        assert "nan" not in row, row
    assert any(line.startswith("p. pipecat") and "not run" in line for line in lines)
    for ratio in ("au/e ", "au/t ", "au/e0", "du/e ", "a/au "):
        assert any(line.startswith(ratio) for line in lines), ratio
    assert "goal <= 1.0x" in out and "goal <= 0.8x" in out
    for latency in ("(a) frame -> append", "(b) delta -> media", "(c) speech_started -> clear"):
        line = next(line for line in lines if line.startswith(latency))
        assert re.search(r"\bau \d+\.\d\d (met|NOT met)", line), line
    # Every call's frames arrived, no session crossed into another call, none went unmatched;
    # no server logged a warning (ours writes each call's record to its own migrated database).
    assert "crossed deltas 0" in out and "unmatched sessions 0" in out
    assert out.count("server log warnings 0") == 6, out


def test_the_bridge_benchmark_refuses_servers_it_does_not_have(capsys, tmp_path):
    from benchmarks import bridge

    assert bridge.parse_args(["--servers", "au,e"]).servers == ["au", "e"]
    with pytest.raises(SystemExit):
        bridge.parse_args(["--servers", "au,x"])
    assert "no server x; the servers: a, au, e, e0, t, du" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bridge.parse_args(["--baseline", str(tmp_path)])
    assert "is not a checkout of this project" in capsys.readouterr().err


def test_parser_benchmark_compares_the_same_results(capsys):
    from benchmarks import parsers

    assert parsers.main(["--frames", "1000"]) == 0
    assert "pydantic / ours:" in capsys.readouterr().out


def test_quick_bidirectional_profile_prints_both_costs(capsys):
    assert stream.main(["--bidirectional", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "a listening call" in out and "a call hearing audio" in out
    assert "with no underrun; every inbound frame arrived" in out


def test_capacity_command_steps_and_reports():
    # Its own process: the command points this process's channel layer at its Redis.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.capacity",
            *("--start", "5", "--step", "5"),
            *("--max", "10"),
            *("--seconds", "1"),
            *("--processes", "1,2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # One process, then two on one Redis, and how capacity grew.
    assert done.stdout.count("capacity: 10 real-time calls with lag p99 <= 40 ms") == 2
    assert "1 process(es) on one Redis" in done.stdout
    assert "2 process(es) on one Redis" in done.stdout
    assert "capacity from 1 to 2 processes: 10 -> 10 calls (1.00x)" in done.stdout


def test_the_resume_benchmark_hands_a_call_over_and_reports_it(capsys, tmp_path):
    resume.main(["--calls", "1", "--record", str(tmp_path)])
    out = capsys.readouterr().out
    assert "SIGTERM->closed" in out and "closed->history" in out
    assert "CA00000000000000000000000000000001" in out
    assert (tmp_path / "CA00000000000000000000000000000001.wav").exists(), "one WAV, both legs"
