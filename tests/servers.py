"""Real servers for tests: the example project (or another ASGI app) under daphne or uvicorn, and
redis-server and PostgreSQL, each on a free 127.0.0.1 port, started and stopped by the test."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What each server the launcher runs logs once it listens on 127.0.0.1:{port}.
LISTENING = {
    "daphne": r"Listening on TCP address 127\.0\.0\.1:{port}$",
    "uvicorn": r"Uvicorn running on http://127\.0\.0\.1:{port} ",
}
# Not voiceflow_channels.server.SERVERS: importing daphne would install Twisted's reactor here.
SERVERS = tuple(LISTENING)


class Server:
    """`python -m example_project --server daphne|uvicorn` on a free port, or with `application`
    ("module:attribute") the app's launcher serving that app; its log lines are collected as they
    come."""

    def __init__(self, server: str = "daphne", application: str | None = None, **env: str) -> None:
        self.server = server
        self.port = free_port()
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        options = ["--server", server, "-b", "127.0.0.1", "-p", str(self.port)]
        if application is None:
            command = ["-m", "example_project", *options]
        else:
            command = ["-m", "voiceflow_channels.server", *options, application]
        self.proc = subprocess.Popen(
            [sys.executable, *command],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(LISTENING[server].format(port=self.port), STARTUP_SECONDS)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/twilio/stream"

    def get(self, path: str) -> tuple[int, str]:
        """GET `path` over HTTP: the status and the body, error statuses included."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def wait_for(self, pattern: str, timeout: float = 10, count: int = 1) -> list[str]:
        """Block until `count` log lines match `pattern`; fail with the log if they never do."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._new_line:
            while True:
                found = [line for line in self.lines if regex.search(line)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    log = "\n".join(self.lines[-40:])
                    raise AssertionError(f"{self.server} never logged {count}x {pattern!r}:\n{log}")
                self._new_line.wait(left)

    def stop(self) -> None:
        end_process(self.proc)
        self._reader.join(10)
        self.proc.stderr.close()


Daphne = Server  # the name the daphne-only tests use


class Redis:
    """redis-server on a free port with no persistence. `kill()` then `start()` stage an outage:
    the same port again, and everything it held (groups, queued messages) lost."""

    def __init__(self) -> None:
        self.port = free_port()
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for line in self.proc.stdout:
            if "Ready to accept connections" in line:
                break
        else:
            raise AssertionError("redis-server exited before it was ready")
        self._reader = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self._reader.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown, every client's connection drops at once."""
        self.proc.kill()
        self.stop()

    def stop(self) -> None:
        end_process(self.proc)
        self._reader.join(10)
        self.proc.stdout.close()


class Postgres:
    """A PostgreSQL server of its own (Debian's binaries, /usr/lib/postgresql/*/bin) on a free
    127.0.0.1 port, trusting local connections, in a temporary directory removed by `stop()`.
    As root (CI), it runs as the `postgres` user: PostgreSQL refuses to run as root.
    `stop()` then `start()` stage an outage on the same port, the data kept."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise FileNotFoundError("initdb (apt-get install postgresql)")
        self.bin = found[-1].parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="voiceflow-pg-"))
        self.dir.chmod(0o755)
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        self.start()

    @classmethod
    def running_at(cls, url: str, directory: str) -> Postgres:
        """The server another process started (`url`, `dir`), to stop and start here."""
        server = cls.__new__(cls)
        server.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1].parent
        server.port = int(url.rsplit(":", 1)[1].split("/")[0])
        server.dir = Path(directory)
        server._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return server

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin / tool), *args], check=True, capture_output=True, timeout=60
        )

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "-l",
            str(self.dir / "log"),
            "start",
        )

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/voiceflow"

    def stop(self, remove: bool = True) -> None:
        """Stop it (fast: live connections are cut, as a crash would cut them); with `remove`,
        its files too."""
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)


def django_shell(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a separate Django process of the example project (as a Celery task would),
    with `env` added; its exit status and output are the caller's to judge."""
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def end_process(proc: subprocess.Popen) -> None:
    """Terminate `proc`, and kill it if it has not exited 10 s later."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running(count: int, **env: str) -> Iterator[list[Server]]:
    """`count` servers of the example project with `env`, stopped however the block ends."""
    started: list[Server] = []
    try:
        started.extend(Server(**env) for _ in range(count))
        yield started
    finally:
        for server in started:
            server.stop()
