"""Ending calls on real servers, with the simulator as Twilio (`--answer`): the signed voice
webhook, the stream, and the `<Connect action>` once the stream has closed. The demo hangs up on
9 and transfers on 0; a drain past its deadline is redirected to a live process."""

from __future__ import annotations

import asyncio
import signal
import wave
from pathlib import Path

import pytest

from example_project.demo import goodbye
from tests.servers import Server, django_shell
from voiceflow_channels.mulaw import BYTES_PER_MS, linear_to_mulaw
from voiceflow_channels.testing import callsim
from voiceflow_channels.testing.webhook import Twilio

TOKEN = "test-auth-token"
PUBLIC = "wss://voice.example.com"
ALLOWED = "+15557654321"
SIGNED = {
    "VOZ_FEATURE_VOICE_FLOW_A": "1",
    "TWILIO_AUTH_TOKEN": TOKEN,
    "VOICEFLOW_PUBLIC_URL": PUBLIC,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    "VOICEFLOW_TRANSFER_ALLOWLIST": ALLOWED,
}


def twilio(server: Server) -> Twilio:
    return Twilio.for_stream(server.url, PUBLIC, TOKEN)


def recorded(path: Path) -> bytes:
    """What the caller heard, as mu-law again (the WAV holds its 16-bit PCM)."""
    with wave.open(str(path)) as wav:
        pcm = wav.readframes(wav.getnframes())
    samples = memoryview(pcm).cast("h")
    return linear_to_mulaw(samples)


async def test_nine_hangs_up_after_the_whole_goodbye_was_heard(tmp_path):
    server = Server("daphne", **SIGNED)
    try:
        result = await callsim.run(
            server.url,
            1,
            6.0,
            True,
            presses=[(0.5, "9")],
            record=tmp_path,
            twilio=twilio(server),
        )
        [call] = result.calls
        assert call.ok, call.error
        assert call.then == "Hangup"
        heard = recorded(call.recording)
        assert goodbye() in heard, "the caller heard every frame of the goodbye"
        assert heard.endswith(bytes([0xFF]) * 100 * BYTES_PER_MS), "then silence: no more audio"
        [line] = server.wait_for(rf"call ended \(hangup\) callSid={call.call_sid}")
        assert f"played_ms={len(goodbye()) // BYTES_PER_MS} cleared_ms=0" in line
        assert call.media_frames < 6 * 50, "the server closed the stream before the call's stop"
        assert f"voiceflow answered callSid={call.call_sid}" in "\n".join(server.lines)
    finally:
        server.stop()


async def test_zero_transfers_to_an_allowed_number_and_not_to_another(tmp_path):
    for to, then in ((ALLOWED, f"Dial {ALLOWED}"), ("+19005550100", "Redirect")):
        server = Server("daphne", **SIGNED, DEMO_TRANSFER_TO=to)
        try:
            result = await callsim.run(
                server.url, 1, 2.0, True, presses=[(0.5, "0")], twilio=twilio(server)
            )
            [call] = result.calls
            assert call.ok, call.error
            assert call.then is not None and call.then.startswith(then)
        finally:
            server.stop()


async def test_a_call_drained_past_its_deadline_is_redirected_to_another_process(redis, tmp_path):
    shared = {**SIGNED, "REDIS_URL": redis.url, "VOICEFLOW_DRAIN_SECONDS": "1"}
    draining, live = Server("daphne", **shared), Server("uvicorn", **shared)
    try:
        # Twilio reaches the live process for the webhook, the action and the redirect, as a
        # load balancer would; the first stream is on the process that is about to drain.
        playing = asyncio.create_task(
            callsim.run(draining.url, 1, 4.0, True, first=31, record=tmp_path, twilio=twilio(live))
        )
        await asyncio.to_thread(draining.wait_for, "voiceflow start callSid=")
        draining.proc.send_signal(signal.SIGTERM)
        result = await asyncio.wait_for(playing, 20)
        [call] = result.calls
        assert call.ok, call.error
        first, second = call.legs
        assert first.then == f"Redirect {PUBLIC.replace('wss', 'https')}/twilio/voice?reconnect=1"
        draining.wait_for(rf"call ended \(drained\) callSid={call.call_sid}")
        assert await asyncio.to_thread(draining.proc.wait, 20) == 0
        # Twilio's redirect: the same call on a new stream, which plays the rest of the call.
        assert first.call_sid == second.call_sid == call.call_sid
        assert first.stream_sid != second.stream_sid == call.stream_sid
        live.wait_for(rf"voiceflow start callSid={call.call_sid} streamSid={second.stream_sid}")
        assert first.media_frames + second.media_frames == call.media_frames == 4 * 50
        assert second.turnaround_ms is not None and second.turnaround_ms > 0
        heard = recorded(call.recording)
        assert len(heard) >= 4000 * BYTES_PER_MS, "one recording across both streams"
    finally:
        draining.stop()
        live.stop()


@pytest.mark.parametrize("server_name", ["daphne"])
async def test_a_hangup_from_another_process_is_answered_by_a_third(redis, server_name):
    """The decision crosses processes through the shared cache: the call's process records
    it, another answers the action."""
    shared = {**SIGNED, "REDIS_URL": redis.url}
    holder, answerer = Server(server_name, **shared), Server(server_name, **shared)
    try:
        playing = asyncio.create_task(
            callsim.run(holder.url, 1, 30.0, True, first=41, twilio=twilio(answerer))
        )
        [line] = await asyncio.to_thread(holder.wait_for, "voiceflow start callSid=")
        call_sid = line.split("callSid=")[1].split()[0]
        hung_up = await asyncio.to_thread(
            django_shell,
            f"from voiceflow_channels import calls; calls.hangup({call_sid!r})",
            REDIS_URL=redis.url,
        )
        assert hung_up.returncode == 0, hung_up.stderr
        result = await asyncio.wait_for(playing, 20)
        assert result.calls[0].then == "Hangup"
    finally:
        holder.stop()
        answerer.stop()
