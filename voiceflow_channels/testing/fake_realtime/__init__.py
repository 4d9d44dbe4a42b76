"""A fake OpenAI Realtime server (GA interface) for tests and benchmarks, on 127.0.0.1.

Framework-free (asyncio, websockets and the `openai` SDK's own event models), so it needs the
`openai` extra: `voiceflow_channels.testing` does not import it. In a test::

    async with FakeRealtime(script=Script(replies=(Reply(audio_ms=800),))) as fake:
        client = AsyncOpenAI(api_key="sk-test", base_url=fake.base_url)
        ...
        await fake.wait_response_started(1)

As a process (the benchmark, tests against real servers)::

    python -m voiceflow_channels.testing.fake_realtime --port 0

prints `fake realtime listening on http://127.0.0.1:PORT/v1` once it listens.
"""

from __future__ import annotations

from .conversation import FunctionOutput, Truncate
from .responses import ResponseRecord
from .script import FunctionCall, Reply, Script
from .server import FakeRealtime
from .session import FakeConnection

__all__ = [
    "FakeConnection",
    "FakeRealtime",
    "FunctionCall",
    "FunctionOutput",
    "Reply",
    "ResponseRecord",
    "Script",
    "Truncate",
]
