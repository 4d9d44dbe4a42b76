"""Fixtures shared by the test files; the plain helpers they import are in tests/utils.py."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

import pytest

from tests.servers import Redis
from tests.utils import Assistant, RecordingConsumer
from voiceflow_channels.testing.fake_realtime import FakeRealtime, Script


@pytest.fixture(autouse=True)
def records_only_with_a_database(request, monkeypatch):
    """Call records on (their default) only in tests that may use the database; the env also
    reaches the servers a test starts."""
    if request.node.get_closest_marker("django_db") is None:
        monkeypatch.setenv("VOICEFLOW_CALL_RECORDS", "0")


@pytest.fixture
def flag_on(settings):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "1"
    settings.TWILIO_AUTH_TOKEN = ""
    settings.VOICEFLOW_PUBLIC_URL = ""
    return settings


@pytest.fixture
def redis():
    """A redis-server of its own on a free port; skipped where none is installed, except in CI."""
    try:
        server = Redis()
    except FileNotFoundError:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI: .ci/run must install it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    yield server
    server.stop()


@pytest.fixture
def summaries(caplog):
    """The one-line call summaries the consumer logged, newest last."""
    caplog.set_level(logging.INFO, logger="voiceflow_channels")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "call ended" in r.getMessage()]

    return lines


@pytest.fixture
def handled():
    """A queue of (consumer, what) from every `RecordingConsumer` (tests.utils): "joined" once a
    call has joined its group, then each wait message type it has handled. The streams must be
    served by that consumer: `build_router(consumer=RecordingConsumer)`."""
    RecordingConsumer.handled = asyncio.Queue()
    return RecordingConsumer.handled


@pytest.fixture
def fresh_cache():
    """Django's default cache, emptied: a call's recorded end from another test is gone."""
    from django.core.cache import caches

    caches["default"].clear()


@pytest.fixture
def assistant(flag_on):
    """The `Assistant` (tests.utils), its records emptied; no chime unless a test asks."""
    Assistant.events = []
    Assistant.started = asyncio.Queue()
    flag_on.VOICE_WAIT_SOUND_TRIGGER_MS = "60000"
    return Assistant


@pytest.fixture
async def fake(flag_on, monkeypatch, caplog) -> AsyncIterator[FakeRealtime]:
    """The fake Realtime server, where the SDK looks for OpenAI (the env), unpaced."""
    caplog.set_level(logging.INFO, logger="voiceflow_channels")
    async with FakeRealtime(script=Script(speed=None)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        yield server
