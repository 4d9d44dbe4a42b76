"""Call records on a real PostgreSQL server these tests start on a free 127.0.0.1 port: the
records' tests (test_records.py) run by pytest in a child process whose DATABASE_URL is
postgres:// (there, the database also really goes down and comes back); and the example project
migrated and served by a real daphne, a simulated call recorded, its admin at /admin/."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import psycopg
import pytest

from tests.servers import ROOT, Postgres, Server, django_shell
from voiceflow_channels.testing import callsim


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


# The record as the example's own Django reads it, in a separate process.
READ_RECORD = """
import json
from voiceflow_channels.models import CallRecord
record = CallRecord.objects.get()
print(json.dumps({"ended": record.ended, "legs": record.legs, "figures": record.figures}))
"""


def migrated(postgres: Postgres) -> dict[str, str]:
    """The example's database on `postgres`, created and migrated: the env that names it."""
    with psycopg.connect(
        f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres", autocommit=True
    ) as admin:
        admin.execute("CREATE DATABASE voiceflow")
    database = {"DATABASE_URL": postgres.url}
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env={**os.environ, **database},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    return database


async def test_the_example_records_a_call_served_by_daphne(postgres):
    database = await asyncio.to_thread(migrated, postgres)
    server = Server(
        "daphne",
        VOZ_FEATURE_VOICE_FLOW_A="1",
        VOICEFLOW_CALL_RECORDS="1",
        DEMO_WAIT_MS="1200",
        **database,
    )
    try:
        result = await callsim.run(server.url, 1, 3.5, True, presses=[(0.3, "1")])
        [call] = result.calls
        assert call.ok, call.error
        await asyncio.to_thread(server.wait_for, r"call ended \(stop\)")
        assert server.get("/admin/login/")[0] == 200, "the admin is mounted"
        status, css = server.get("/static/admin/css/base.css")
        assert status == 200 and "body" in css, "with its styles"
        for _ in range(100):  # the record is written just after the call's end
            read = await asyncio.to_thread(django_shell, READ_RECORD, **database)
            if read.returncode == 0:
                break
            await asyncio.sleep(0.1)
        assert read.returncode == 0, read.stderr[-2000:]
    finally:
        server.stop()
    record = json.loads(read.stdout.strip().splitlines()[-1])
    assert record["ended"] == "caller_hung_up"
    kinds = [event["kind"] for event in record["legs"][0]["events"]]
    assert "chime" in kinds and "utterance" in kinds and kinds[-1] == "end"
    assert record["figures"]["chimes"] >= 1 and record["figures"]["played_ms"] > 0
