"""The simulator against the example's assistant on a real server (the fake Realtime server as
the model): `--press` keys reach the assistant's call as DTMF and the model as the caller's
words, and a `--silent` caller gives the model no speech where a talking one is heard."""

from __future__ import annotations

import asyncio
from io import StringIO

from django.core.management import call_command

from tests.servers import Server
from voiceflow_channels.testing.fake_realtime import FakeRealtime


def assistant(server_name: str, fake: FakeRealtime) -> Server:
    return Server(
        server_name,
        VOZ_FEATURE_VOICE_FLOW_A="1",
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=fake.base_url,
    )


async def run_command(*options: str) -> str:
    out = StringIO()
    await asyncio.to_thread(
        call_command, "voiceflow_callsim", *options, stdout=out, stderr=StringIO()
    )
    return out.getvalue()


async def ended(server: Server, sid_hex: str) -> str:
    """The server's log line of call CA0…`sid_hex`, ended by its stop."""
    pattern = rf"call ended \(stop\) callSid=CA0+{sid_hex} "
    [line] = await asyncio.to_thread(server.wait_for, pattern)
    return line


async def test_pressed_keys_reach_the_assistants_call_as_dtmf():
    async with FakeRealtime() as fake:
        server = assistant("uvicorn", fake)
        try:
            out = await run_command(
                *("--url", server.url, "--seconds", "3", "--first", "611"),
                *("--press", "4@0.5", "--press", "2@1", "--press", "#@1.5"),
            )
            line = await ended(server, "263")
        finally:
            server.stop()
    assert "every call was closed by the server after its stop" in out
    assert fake.sessions, "an assistant's call: the model session was opened"
    assert " dtmf=3 " in line, "the three keys pressed, and no periodic one"
    assert fake.user_texts == ["The caller pressed 4 2 #"], "given to the model as the caller's"


async def test_a_silent_caller_gives_the_model_no_speech_where_a_talking_one_is_heard():
    """3 s: long enough for the periodic keypress a plain call sends (at 2.5 s)."""
    async with FakeRealtime() as fake:
        server = assistant("daphne", fake)
        try:
            url = server.url
            await run_command("--url", url, "--seconds", "3", "--first", "601", "--silent")
            line = await ended(server, "259")
            assert " frames=150 " in line and " dtmf=0 " in line
            assert fake.speech_started_ms == [], "the model heard no speech"
            await run_command("--url", url, "--seconds", "3", "--first", "602", "--talk", "1")
            await ended(server, "25a")
            assert len(fake.speech_started_ms) == 1, "a talking caller is heard"
        finally:
            server.stop()
