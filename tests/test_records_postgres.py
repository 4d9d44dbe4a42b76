"""The call records' tests (test_records.py) on a real PostgreSQL server this test starts on a
free 127.0.0.1 port: the same file, run by pytest in a child process whose DATABASE_URL is
postgres://; there, the database also really goes down mid-call and comes back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.servers import ROOT, Postgres


@pytest.fixture
def postgres():
    """A PostgreSQL server of its own; skipped where none is installed, except in CI."""
    try:
        server = Postgres()
    except FileNotFoundError:
        if os.environ.get("CI"):
            pytest.fail("postgresql is missing in CI: .ci/run must install it")
        pytest.skip("postgresql is not installed (apt-get install postgresql)")
    yield server
    server.stop()


def test_the_call_records_tests_pass_on_postgresql(postgres):
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "VOICEFLOW_TEST_POSTGRES_DIR": str(postgres.dir),
    }
    env.pop("VOICEFLOW_CALL_RECORDS", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_records.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]
