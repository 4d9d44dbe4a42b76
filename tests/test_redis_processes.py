"""Across processes: two daphne processes share a real Redis layer; a wait, audio and a clear sent
from a third process reach the right call on the right process, and no other call."""

from __future__ import annotations

import base64
import json

import pytest
import websockets

from tests.servers import SERVERS, Daphne, django_shell
from voiceflow_channels.testing import SimulatedCall


def send_wait(redis_url: str, code: str) -> None:
    """Run `code` with `wait` imported in a separate Django process on the same Redis."""
    done = django_shell(f"from voiceflow_channels import wait; {code}", REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("server_name", SERVERS)
async def test_wait_from_a_third_process_reaches_only_its_call(redis, server_name):
    redis_url = redis.url
    env = {
        "VOZ_FEATURE_VOICE_FLOW_A": "1",
        "VOZLIA_DEBUG": "1",
        "REDIS_URL": redis_url,
        "VOICE_WAIT_SOUND_TRIGGER_MS": "0",
    }
    one, two = Daphne(server_name, **env), Daphne(server_name, **env)
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
        target_ws = sockets[0]
        chime = [json.loads(await target_ws.recv())]
        while chime[-1]["event"] != "clear":  # the chime played from 0 ms; the wait's end cut it
            chime.append(json.loads(await target_ws.recv()))
        assert [m["event"] for m in chime] == ["media", "mark"] * 3 + ["clear"]

        # 2.5 s of audio from a third process: three parts through Redis, played by the target
        # (mark-clocked: 300 ms go out at once), then cleared from there too.
        send_wait(
            redis_url,
            "from voiceflow_channels import audio; "
            f"audio.play({target.call_sid!r}, bytes(range(256)) * 78 + bytes(32), 'reply')",
        )
        sent = [json.loads(await target_ws.recv()) for _ in range(6)]
        assert [m["event"] for m in sent] == ["media", "mark"] * 3
        assert base64.b64decode(sent[0]["media"]["payload"]) == (bytes(range(256)) * 4)[:800]
        send_wait(
            redis_url, f"from voiceflow_channels import audio; audio.clear({target.call_sid!r})"
        )
        assert json.loads(await target_ws.recv()) == {
            "event": "clear",
            "streamSid": target.stream_sid,
        }

        for (call, server), ws in zip(placed, sockets, strict=True):
            await ws.send(call.stop())
            await ws.wait_closed()
            [line] = server.wait_for(f"call ended \\(stop\\) callSid={call.call_sid}")
            expected = "waits=1 chimes=1" if call is target else "waits=0 chimes=0"
            assert expected in line and "frames=1" in line
            if call is target:
                assert "played_ms=0 cleared_ms=3000" in line  # the chime's 500 ms and the reply
        assert not [line for line in two.lines if "voiceflow wait" in line]
        assert not [line for line in one.lines if f"callSid={neighbour.call_sid} reason" in line]
    finally:
        one.stop()
        two.stop()
