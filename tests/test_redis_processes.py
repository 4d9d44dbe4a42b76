"""Across processes: two daphne processes share a real Redis layer; a wait started from a third
process reaches the right call on the right process, and no other call."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import websockets

from tests.servers import ROOT, Daphne, Redis
from voiceflow_channels.simulated_call import SimulatedCall


@pytest.fixture(scope="module")
def redis_url():
    try:
        server = Redis()
    except FileNotFoundError:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI: .ci/run must install it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    yield server.url
    server.stop()


def send_wait(redis_url: str, code: str) -> None:
    """Run `code` with `wait` imported in a separate Django process on the same Redis."""
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            f"from voiceflow_channels import wait; {code}",
        ],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": redis_url},
        check=True,
        timeout=60,
    )


async def test_wait_from_a_third_process_reaches_only_its_call(redis_url):
    env = {
        "VOZ_FEATURE_VOICE_FLOW_A": "1",
        "VOZLIA_DEBUG": "1",
        "REDIS_URL": redis_url,
        "VOICE_WAIT_SOUND_TRIGGER_MS": "0",
    }
    one, two = Daphne(**env), Daphne(**env)
    try:
        target, bystander, neighbour = (SimulatedCall(n=n) for n in (101, 102, 103))
        placed = ((target, one), (bystander, two), (neighbour, one))
        sockets = [await websockets.connect(server.url) for _, server in placed]
        for (call, server), ws in zip(placed, sockets, strict=True):
            for frame in (call.connected(), call.start(), call.media()):
                await ws.send(frame)
            server.wait_for(f"voiceflow start callSid={call.call_sid}")

        send_wait(redis_url, f"wait.start({target.call_sid!r}, 'llm')")
        one.wait_for(f"voiceflow wait start callSid={target.call_sid} reason=llm")
        one.wait_for(f"voiceflow wait chime due callSid={target.call_sid}")
        send_wait(redis_url, f"wait.end({target.call_sid!r})")
        one.wait_for(f"voiceflow wait end callSid={target.call_sid}")

        for (call, server), ws in zip(placed, sockets, strict=True):
            await ws.send(call.stop())
            await ws.wait_closed()
            [line] = server.wait_for(f"call ended \\(stop\\) callSid={call.call_sid}")
            expected = "waits=1 chimes=1" if call is target else "waits=0 chimes=0"
            assert expected in line and "frames=1" in line
        assert not [line for line in two.lines if "voiceflow wait" in line]
        assert not [line for line in one.lines if f"callSid={neighbour.call_sid} reason" in line]
    finally:
        one.stop()
        two.stop()
