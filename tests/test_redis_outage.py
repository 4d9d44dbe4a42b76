"""A Redis outage under live calls: two daphne processes on one real redis-server, which is
killed mid-call and restarted empty on the same port. The calls go on and lose nothing; waits and
audio sent meanwhile fail loudly; `/readyz` says so; once Redis is back each call has re-joined
its group and a wait reaches it again."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import websockets

from tests.servers import Daphne, django_shell, running
from voiceflow_channels.testing import SimulatedCall

RECOVERY_SECONDS = 15  # the layer's retry backs off to 5 s; this leaves room for a slow machine


@pytest.fixture
def servers(redis):
    env = {
        "VOZ_FEATURE_VOICE_FLOW_A": "1",
        "VOZLIA_DEBUG": "1",  # the wait breadcrumbs say which process a wait reached
        "REDIS_URL": redis.url,
        "VOICE_WAIT_SOUND_TRIGGER_MS": "600000",  # no chime: the calls hear nothing at all
        "VOICEFLOW_IDLE_TIMEOUT_S": "120",
    }
    with running(2, **env) as started:
        yield started


def ready_again(server: Daphne) -> tuple[int, str]:
    """Poll `/readyz` until it answers 200 (the first probes after Redis returns may still meet
    a pooled connection of the dead server); the last answer."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while (answer := server.get("/readyz"))[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    return answer


async def test_calls_survive_a_redis_outage_and_waits_reach_them_once_it_is_back(redis, servers):
    one, two = servers
    calls = {one: SimulatedCall(n=601), two: SimulatedCall(n=602)}
    async with contextlib.AsyncExitStack() as stack:  # a failed test still closes its calls
        sockets = {
            server: await stack.enter_async_context(websockets.connect(server.url))
            for server in servers
        }
        sent = dict.fromkeys(servers, 0)

        async def talk(frames: int) -> None:
            for server, call in calls.items():
                for _ in range(frames):
                    await sockets[server].send(call.media())
                sent[server] += frames

        for server, call in calls.items():
            await sockets[server].send(call.connected())
            await sockets[server].send(call.start())
        await talk(5)
        for server, call in calls.items():
            await asyncio.to_thread(server.wait_for, f"voiceflow start callSid={call.call_sid}")
            assert await asyncio.to_thread(server.get, "/readyz") == (200, "ready\n")

        redis.kill()
        for server, call in calls.items():
            await asyncio.to_thread(
                server.wait_for,
                f"voiceflow layer receive failed callSid={call.call_sid} \\(ConnectionError: ",
            )
        await talk(5)
        for server in servers:
            status, body = await asyncio.to_thread(server.get, "/readyz")
            assert status == 503
            assert body.startswith("channel layer: ConnectionError: "), body

        target = calls[one].call_sid
        refused = (
            f"redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:{redis.port}"
        )
        for code in (
            f"from voiceflow_channels import wait; wait.start({target!r}, 'during')",
            f"from voiceflow_channels import audio; audio.play({target!r}, bytes(1600), 'during')",
        ):
            sender = await asyncio.to_thread(django_shell, code, REDIS_URL=redis.url)
            assert sender.returncode != 0, code
            assert refused in sender.stderr, sender.stderr
        await talk(5)

        redis.start()  # the same port, and empty: both calls' groups are gone
        for server, call in calls.items():
            await asyncio.to_thread(
                server.wait_for,
                f"voiceflow re-joined the layer callSid={call.call_sid} after ",
                RECOVERY_SECONDS,
            )
            assert await asyncio.to_thread(ready_again, server) == (200, "ready\n")
            _, text = await asyncio.to_thread(server.get, "/metrics")
            assert 'voiceflow_layer_failures_total{kind="receive"}' in text
        await talk(5)

        sender = await asyncio.to_thread(
            django_shell,
            f"from voiceflow_channels import wait; wait.start({target!r}, 'after')",
            REDIS_URL=redis.url,
        )
        assert sender.returncode == 0, sender.stderr
        await asyncio.to_thread(one.wait_for, f"voiceflow wait start callSid={target} reason=after")
        await talk(5)

        for server, call in calls.items():
            ws = sockets[server]
            await ws.send(call.stop())
            heard = [message async for message in ws]  # until the server closes
            assert heard == [], "no chime, and no audio from the play that failed"
            assert ws.close_code == 1000
            [line] = await asyncio.to_thread(
                server.wait_for, f"call ended \\(stop\\) callSid={call.call_sid}"
            )
            assert f" frames={sent[server]} " in line and " gaps=0 " in line, line
            expected = "waits=1" if server is one else "waits=0"
            assert f" {expected} " in line, line
        # What was sent during the outage is gone for good; the other call never heard a wait.
        [started] = [line for line in one.lines if "voiceflow wait start" in line]
        assert f"callSid={target} reason=after" in started
        assert not [line for line in two.lines if "voiceflow wait" in line]
