"""The servers under test, each a subprocess on a free 127.0.0.1 port, and what they log per call.

A reader thread timestamps every stderr line as it arrives, so a call's completion is known at
the server, not when its client notices.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 60
STOP_SECONDS = 10  # after SIGTERM, then SIGKILL
# How long the last of a run's calls may take to log its end after the run.
END_LINES_TIMEOUT = 60
# daphne's, uvicorn's and hypercorn's line once the port is open; {port} is the server's.
LISTENING = (
    r"(Listening on TCP address |Uvicorn running on http://|Running on http://)"
    r"127\.0\.0\.1:{port}\b"
)
# Every server logs one line per call after its stop: ours, the naive consumer, raw, bare and
# the peers under uvicorn.
CALL_ENDED = re.compile(r"call ended \(stop\) callSid=(\w+)\b.*?\bframes=(\d+)")


@dataclass(frozen=True)
class Spec:
    """How to start one server: `{port}` in argv is replaced by its port."""

    key: str
    title: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: Path = ROOT
    # Read its stdout too: granian logs there (even that it listens). The others' stdout is
    # their access log, dropped as in the tests.
    logs_to_stdout: bool = False
    # The line that says it takes connections.
    ready: str = LISTENING

    @property
    def serves_example(self) -> bool:
        """It runs the example project, which keeps a record of each call in its database."""
        return any(arg.startswith("example_project") for arg in self.argv)


# The env pins what the example project would otherwise read from the caller's environment: an
# OPENAI_API_KEY there would make it serve the model assistant (and call OpenAI) instead of the
# demo; the bridge benchmark sets its own (`with_model`).
DAPHNE_ENV = (
    ("TWILIO_AUTH_TOKEN", ""),
    ("REDIS_URL", ""),
    ("VOZLIA_DEBUG", "0"),
    ("OPENAI_API_KEY", ""),
)
DAPHNE_ARGS = ("-b", "127.0.0.1", "-p", "{port}")

OURS = Spec(
    "a",
    "TwilioStreamConsumer, daphne",
    ("-m", "example_project", *DAPHNE_ARGS),
    (("VOZ_FEATURE_VOICE_FLOW_A", "1"), *DAPHNE_ENV),
)
NAIVE = Spec(
    "b", "naive JSON consumer, daphne", ("-m", "benchmarks.naive_asgi", *DAPHNE_ARGS), DAPHNE_ENV
)
RAW = Spec("c", "raw websockets server", ("-m", "benchmarks.raw_server", "{port}"))
BARE = Spec(
    "d", "bare ASGI app, daphne (ceiling)", ("-m", "benchmarks.bare_asgi", *DAPHNE_ARGS), DAPHNE_ENV
)

# Under uvicorn, with the same launcher and settings (voiceflow_channels.server --server uvicorn):
# ours, and the peers the issue names (their packages are the `bench` extra).
OURS_UVICORN = Spec(
    "au",
    "TwilioStreamConsumer, uvicorn",
    ("-m", "example_project", "--server", "uvicorn", *DAPHNE_ARGS),
    OURS.env,
)
FASTAPI_PEER = Spec(
    "e", "FastAPI endpoint (samples), uvicorn", ("-m", "benchmarks.fastapi_peer", *DAPHNE_ARGS)
)
PIPECAT_PEER = Spec(
    "p", "pipecat Twilio edge, uvicorn", ("-m", "benchmarks.pipecat_peer", *DAPHNE_ARGS)
)
PEER_MODULES = ("fastapi", "granian", "hypercorn", "pipecat", "uvicorn")
# The ceiling under uvicorn, as (d) is under daphne: what any app pays uvicorn per frame.
BARE_UVICORN = Spec(
    "du",
    "bare ASGI app, uvicorn (ceiling)",
    ("-m", "benchmarks.bare_asgi", "--server", "uvicorn", *DAPHNE_ARGS),
    DAPHNE_ENV,
)

# The other servers the issue names, measured before any is supported: ours under their own
# command lines, one worker, their fastest event loop (uvloop), no lifespan (Channels has none).
# granian has no websocket size limit to set (its tungstenite defaults: 16 MiB frames, 64 MiB
# messages); hypercorn's is set to ours by benchmarks/hypercorn.toml.
OURS_GRANIAN = Spec(
    "g",
    "TwilioStreamConsumer, granian",
    (
        "-m",
        "granian",
        "--interface",
        "asginl",
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "example_project.asgi:application",
    ),
    OURS.env,
    logs_to_stdout=True,
    # Its main process listens before its worker serves: connections are refused until then.
    ready=r"\[INFO\] Started worker-1$",
)
OURS_HYPERCORN = Spec(
    "h",
    "TwilioStreamConsumer, hypercorn",
    (
        "-m",
        "hypercorn",
        "--config",
        str(ROOT / "benchmarks" / "hypercorn.toml"),
        "--worker-class",
        "uvloop",
        "--bind",
        "127.0.0.1:{port}",
        "example_project.asgi:application",
    ),
    OURS.env,
)


# The bidirectional profile: our consumer speaking to the calls whose tenant is "speaker".
SPEAKING = Spec(
    "s",
    "TwilioStreamConsumer speaking, daphne",
    ("-m", "benchmarks.speaking_asgi", *DAPHNE_ARGS),
    (("VOZ_FEATURE_VOICE_FLOW_A", "1"), *DAPHNE_ENV),
)


# The bridge benchmark (benchmarks/bridge.py): servers with a model behind them, the fake Realtime
# server in the benchmark's process, whose URL is known once it listens (`with_model`). Ours is
# the example project's ShopAssistant (served when OPENAI_API_KEY is set).
BRIDGE_OURS = Spec("a", "RealtimeAssistant, daphne", OURS.argv, OURS.env)
BRIDGE_OURS_UVICORN = Spec("au", "RealtimeAssistant, uvicorn", OURS_UVICORN.argv, OURS.env)
# The launcher's drain on SIGTERM reads VOICEFLOW_DRAIN_SECONDS through Django's settings: an app
# without Django needs a settings module, or the handler raises ImproperlyConfigured and the
# process is killed STOP_SECONDS later.
NO_DJANGO_ENV = (("DJANGO_SETTINGS_MODULE", "example_project.settings"),)
SAMPLES_BRIDGE = Spec(
    "e",
    "samples' bridge (FastAPI), uvicorn",
    ("-m", "benchmarks.samples_bridge", *DAPHNE_ARGS),
    NO_DJANGO_ENV,
)
SAMPLES_BRIDGE_NO_DEFLATE = Spec(
    "e0",
    "the same, no permessage-deflate",
    SAMPLES_BRIDGE.argv,
    (*NO_DJANGO_ENV, ("SAMPLES_BRIDGE_DEFLATE", "0")),
)
# The floor under both: a bridge that forwards without parsing JSON, under the same uvicorn.
BARE_BRIDGE = Spec(
    "du",
    "bare bridge, uvicorn (floor)",
    ("-m", "benchmarks.bare_bridge", *DAPHNE_ARGS),
    NO_DJANGO_ENV,
)
# Twilio's own framework, twilio-agent-connect: its OpenAIRealtimeProvider under its
# TACFastAPIServer (uvicorn.run with its own arguments).
TAC_BRIDGE = Spec(
    "t",
    "tac OpenAIRealtimeProvider, uvicorn",
    ("-m", "benchmarks.tac_bridge", *DAPHNE_ARGS),
    NO_DJANGO_ENV,
)
OPENAI_KEY = "sk-bench"
# What the bridge benchmark's simulator signs each stream with, as Twilio signs with the account's
# token: tac's websocket route checks it; the others run without a token and check nothing.
TWILIO_TOKEN = "bench-twilio-token"


def with_model(spec: Spec, base_url: str) -> Spec:
    """`spec` with its model at `base_url`: OPENAI_BASE_URL, as the SDK reads it, and a key."""
    env = (*spec.env, ("OPENAI_BASE_URL", base_url), ("OPENAI_API_KEY", OPENAI_KEY))
    return dataclasses.replace(spec, env=env)


def ours_at(checkout: Path, ours: Spec = OURS) -> Spec:
    """Ours (`ours`: how it is served) as another checkout has it (e.g. a git worktree of the
    last release)."""
    return dataclasses.replace(
        ours, key=f"{ours.key}@base", title=f"the same, at {checkout.name}", cwd=checkout
    )


# Issue 6: the same consumer with no layer (the baseline), and on a real Redis layer; OURS runs
# the example's default, the in-memory layer.
OURS_NO_LAYER = Spec(
    "a0",
    "TwilioStreamConsumer, no layer",
    OURS.argv,
    (*OURS.env, ("DJANGO_SETTINGS_MODULE", "benchmarks.settings_no_layer")),
)


def ours_on_redis(redis_url: str) -> Spec:
    return Spec(
        "ar", "TwilioStreamConsumer, Redis layer", OURS.argv, (*OURS.env, ("REDIS_URL", redis_url))
    )


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free 127.0.0.1 port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("--layers needs redis-server on the PATH (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:  # ready when it accepts a connection
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One running server: its stderr lines and, per call, the frames it says it handled."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.port = free_port()
        self.lines: list[str] = []
        self.ended: dict[str, tuple[float, int]] = {}  # callSid -> (arrival, frames)
        self._changed = threading.Condition()
        argv = [a.replace("{port}", str(self.port)) for a in spec.argv]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict(spec.env)}
        # The example project as shipped records every call: each server gets a database of
        # its own, migrated, so that the records are written (and paid for) as in production.
        self._database: tempfile.TemporaryDirectory[str] | None = None
        if spec.serves_example:
            self._database = tempfile.TemporaryDirectory(prefix="voiceflow-bench-")
            env["DATABASE_URL"] = f"sqlite:///{self._database.name}/records.sqlite3"
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--no-input", "--skip-checks", "-v", "0"],
                cwd=spec.cwd,
                env=env,
                check=True,
            )
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=spec.cwd,
            env=env,
            stdout=subprocess.PIPE if spec.logs_to_stdout else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if spec.logs_to_stdout else subprocess.PIPE,
            text=True,
        )
        log = self.proc.stdout if spec.logs_to_stdout else self.proc.stderr
        assert log is not None
        self._log = log
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.wait_for(spec.ready.format(port=self.port), 1, STARTUP_SECONDS)
            self.process = psutil.Process(self.proc.pid)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/twilio/stream"

    def _read(self) -> None:
        for raw in self._log:
            arrival = time.perf_counter()
            line = raw.rstrip("\n")
            ended = CALL_ENDED.search(line)
            with self._changed:
                self.lines.append(line)
                if ended:
                    self.ended[ended[1]] = (arrival, int(ended[2]))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, count: int, timeout: float, since: int = 0) -> None:
        """Wait until `count` lines from line number `since` on match `pattern`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        found = 0
        with self._changed:
            while True:
                found += sum(1 for line in self.lines[since:] if regex.search(line))
                since = len(self.lines)
                if found >= count:
                    return
                self._wait(deadline, f"{count}x {pattern!r}")

    def calls_ended(self, call_sids: list[str], timeout: float) -> dict[str, tuple[float, int]]:
        """(arrival, frames) of each call's end line; raises if one never comes."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not all(s in self.ended for s in call_sids):
                self._wait(deadline, f"the end of {len(call_sids)} calls")
            return {s: self.ended.pop(s) for s in call_sids}

    def _wait(self, deadline: float, what: str) -> None:
        """One wait for a new line (lock held); raises once past `deadline` or if it exited."""
        left = deadline - time.monotonic()
        if left <= 0 or self.proc.poll() is not None:
            log = "\n".join(self.lines[-40:])
            raise RuntimeError(f"{self.spec.title} never logged {what}:\n{log}")
        self._changed.wait(left)

    def cpu_seconds(self) -> float:
        """User and system CPU of the server process, all its threads, and of its children (a
        granian or hypercorn worker)."""
        total = 0.0
        for process in (self.process, *self.process.children(recursive=True)):
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss(self) -> int:
        return self.process.memory_info().rss

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        self._log.close()
        if self._database is not None:
            self._database.cleanup()


@contextmanager
def running(specs: Iterable[Spec]) -> Iterator[list[Server]]:
    """Every server of `specs` started at once (each waits for its own line in a thread of its
    own: a project's start is seconds of waiting, and eight in a row were most of a quick run),
    in the order given; all stopped at once at the end, on failure too. One that fails to start
    stops the others and its error is raised."""
    specs = list(specs)
    with ThreadPoolExecutor(max(1, len(specs))) as pool:
        futures = [pool.submit(Server, spec) for spec in specs]
    servers = [f.result() for f in futures if f.exception() is None]
    try:
        for future in futures:
            if (error := future.exception()) is not None:
                raise error
        yield servers
    finally:
        with ThreadPoolExecutor(max(1, len(servers))) as pool:
            list(pool.map(Server.stop, servers))
