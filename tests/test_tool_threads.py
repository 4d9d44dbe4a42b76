"""The threads sync tools run in: bounded, their busy ones counted (overdue ones too), and each
call with Django's connection hygiene around it, against a real SQLite database."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from django.db import connections
from django.db.utils import ConnectionHandler

from tests.realtime_twilio import Twilio
from tests.utils import metric
from voiceflow_channels.realtime import RealtimeAssistant
from voiceflow_channels.realtime.call_tools import tool_threads, with_fresh_connections
from voiceflow_channels.realtime.tool_threads import ToolThreads
from voiceflow_channels.realtime.tools import Toolbox
from voiceflow_channels.testing.fake_realtime import FunctionCall, Reply, Script

ALIAS = "voiceflow_tools_test"
BUSY = "voiceflow_tool_threads_busy"


@pytest.fixture
def database(tmp_path, django_db_blocker):
    """A real SQLite database under its own alias, its connections kept CONN_MAX_AGE=0 (Django's
    default) unless a test says otherwise; closed and removed after the test."""
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db.sqlite3")}
    config = ConnectionHandler().configure_settings({"default": {}, ALIAS: sqlite})[ALIAS]
    connections.settings[ALIAS] = config
    with django_db_blocker.unblock():
        yield config
    del connections.settings[ALIAS]


async def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never {what}")
        await asyncio.sleep(0.005)


def raw_connection() -> sqlite3.Connection:
    """The database connection of the thread the tool runs in, opened by a query."""
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
    return connections[ALIAS].connection


def is_open(raw: sqlite3.Connection) -> bool:
    try:
        raw.execute("SELECT 1")
    except sqlite3.ProgrammingError:  # "Cannot operate on a closed database."
        return False
    return True


async def test_a_sync_tool_s_connection_is_closed_after_it_as_after_a_view(database):
    opened: list[sqlite3.Connection] = []

    def look_up() -> str:
        opened.append(raw_connection())
        return "found"

    result = await Toolbox(look_up).run(
        "look_up", "{}", timeout_s=5, call_sid="CA1", executor=tool_threads()
    )
    assert result.output == "found"
    [raw] = opened
    assert not is_open(raw)  # CONN_MAX_AGE=0: closed when the call ended, not left in the thread


async def test_a_connection_kept_by_conn_max_age_is_reused_then_replaced_once_it_is_old(database):
    database["CONN_MAX_AGE"] = 60
    seen: list[tuple[object, sqlite3.Connection]] = []

    def look_up() -> str:
        seen.append((connections[ALIAS], raw_connection()))
        return "found"

    box = Toolbox(look_up)
    threads = ToolThreads(1, around=with_fresh_connections)  # one thread: the same connection
    try:
        for _ in range(2):
            assert (
                await box.run("look_up", "{}", timeout_s=5, call_sid="CA1", executor=threads)
            ).ok
        [(wrapper, first), (_, second)] = seen
        assert second is first and is_open(first)  # kept across calls, as in views
        wrapper.close_at = time.monotonic() - 1  # past its CONN_MAX_AGE
        assert (await box.run("look_up", "{}", timeout_s=5, call_sid="CA1", executor=threads)).ok
        third = seen[-1][1]
        assert third is not first and is_open(third)
        assert not is_open(first)  # the old one was closed before the tool ran, not leaked
    finally:
        # The pool thread's connection, closed in that thread (Django refuses another's).
        await asyncio.get_running_loop().run_in_executor(
            threads, lambda: connections[ALIAS].close()
        )
        threads.shutdown()


async def test_with_health_checks_a_connection_the_database_dropped_is_replaced_before_the_tool(
    database,
):
    database.update(CONN_MAX_AGE=None, CONN_HEALTH_CHECKS=True)
    seen: list[tuple[object, sqlite3.Connection]] = []

    def look_up() -> str:
        seen.append((connections[ALIAS], raw_connection()))
        return "found"

    box = Toolbox(look_up)
    threads = ToolThreads(1, around=with_fresh_connections)
    try:
        assert (await box.run("look_up", "{}", timeout_s=5, call_sid="CA1", executor=threads)).ok
        [(wrapper, first)] = seen
        # The database dropped it: its health check (Postgres' SELECT 1) now fails.
        wrapper.is_usable = lambda: False
        assert (await box.run("look_up", "{}", timeout_s=5, call_sid="CA1", executor=threads)).ok
        second = seen[-1][1]
        assert second is not first and not is_open(first), "checked and replaced, not used"
    finally:
        await asyncio.get_running_loop().run_in_executor(
            threads, lambda: connections[ALIAS].close()
        )
        threads.shutdown()


async def test_a_sync_tool_past_its_deadline_is_answered_at_once_its_thread_counted_till_it_ends():
    release = threading.Event()

    def stuck_backend() -> str:
        release.wait(timeout=10)
        return "too late"

    before = metric(BUSY)
    result = await Toolbox(stuck_backend).run(
        "stuck_backend", "{}", timeout_s=0.05, call_sid="CA1", executor=tool_threads()
    )
    assert result.output == (
        "The tool stuck_backend failed: TimeoutError after 0.05 s. Apologise and offer another way."
    )
    assert metric(BUSY) == before + 1  # its thread runs on, and is counted
    release.set()
    await wait_until(lambda: metric(BUSY) == before, "back to the threads busy before")


async def test_an_async_tool_past_its_deadline_is_cancelled_and_holds_no_thread():
    cancelled = asyncio.Event()

    async def slow_lookup() -> str:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return "never"

    before = metric(BUSY)
    result = await Toolbox(slow_lookup).run(
        "slow_lookup", "{}", timeout_s=0.05, call_sid="CA1", executor=tool_threads()
    )
    assert result.error == "TimeoutError after 0.05 s" and cancelled.is_set()
    assert metric(BUSY) == before


async def test_the_pool_is_bounded_and_a_call_queued_behind_a_hang_times_out_and_never_runs():
    release = threading.Event()
    counts: list[int] = []
    ran: list[str] = []

    def hang() -> str:
        release.wait(timeout=10)
        return "late"

    def quick() -> str:
        ran.append("quick")
        return "quick"

    threads = ToolThreads(1, busy=counts.append)
    box = Toolbox(hang, quick)
    try:
        first = await box.run("hang", "{}", timeout_s=0.05, call_sid="CA1", executor=threads)
        second = await box.run("quick", "{}", timeout_s=0.05, call_sid="CA2", executor=threads)
        assert (first.error, second.error) == ("TimeoutError after 0.05 s",) * 2
        assert threads.busy == 1 and counts == [1]  # one thread, held by the hang
    finally:
        release.set()
        threads.shutdown(wait=True)
    assert counts == [1, 0] and ran == []  # the queued call's caller had gone: never run


def test_a_pool_of_no_threads_is_refused():
    with pytest.raises(ValueError, match="a pool of 0 threads runs nothing"):
        ToolThreads(0)


STUCK = threading.Event()


def stuck_lookup(order_id: str) -> str:
    """Looks an order up in a backend that hangs.

    Args:
        order_id: The order number.
    """
    STUCK.wait(timeout=10)
    return "too late"


class Stuck(RealtimeAssistant):
    tools = (stuck_lookup,)


async def test_in_a_call_a_sync_tool_past_its_timeout_is_answered_and_its_thread_counted(
    fake, fresh_cache, settings, summaries
):
    settings.VOICEFLOW_TOOL_TIMEOUT_S = 1
    STUCK.clear()
    before = metric(BUSY)
    call = FunctionCall("stuck_lookup", '{"order_id": "7"}')
    fake.script = Script(speed=None, replies=(Reply(audio_ms=0, function_calls=(call,)),))
    twilio = Twilio(Stuck)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    await fake.wait_for(lambda: bool(fake.function_outputs), "the tool's output")
    assert "TimeoutError after 1 s" in fake.function_outputs[0].output
    assert metric(BUSY) == before + 1, "the call's own pool runs it, and counts it"
    await fake.wait_response_done(2)  # the model answers the timeout: the call goes on
    STUCK.set()
    await twilio.hang_up()
    await wait_until(lambda: metric(BUSY) == before, "back to the threads busy before")
    assert "tools=1 tool_failures=1" in summaries()[0]
