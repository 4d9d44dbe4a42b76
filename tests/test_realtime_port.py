"""RealtimeAssistant on its own: bound to a `FakeCall` port (no websocket, no consumer) and
talking to the fake Realtime server: the greeting, the per-call `prepare`, a barge-in truncated
at what the port says was heard, a refused transfer told to the model, and the wiring that no
subclass may override."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from tests.realtime_twilio import SILENCE, say
from tests.utils import metric
from voiceflow_channels.call_port import CallInfo
from voiceflow_channels.mulaw import BYTES_PER_MS
from voiceflow_channels.realtime import RealtimeAssistant
from voiceflow_channels.testing import FakeCall
from voiceflow_channels.testing.fake_realtime import FakeRealtime, FunctionCall, Reply, Script
from voiceflow_channels.testing.fake_realtime.script import tone


@pytest.fixture
async def fake(monkeypatch) -> AsyncIterator[FakeRealtime]:
    async with FakeRealtime(script=Script(speed=None)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        yield server


class Greeter(RealtimeAssistant):
    instructions = "Be brief."
    greeting = "Hello, this is the shop."


async def test_the_greeting_plays_through_the_port_as_one_utterance(fake):
    fake.script = Script(speed=None, replies=(Reply(audio_ms=700),))
    call = FakeCall()
    assistant = Greeter()
    await assistant.attach(call)
    await call.until(lambda: bool(call.ended))
    [(key, audio)] = call.played.items()
    assert call.ended == [key], "one utterance, closed by the audio's done"
    assert bytes(audio) == tone(0, 700 * BYTES_PER_MS)
    await assistant.detach()
    assert "turns=1" in assistant.summary()


class PerTenant(RealtimeAssistant):
    instructions = "Generic."

    async def prepare(self, call: CallInfo) -> None:
        self.instructions = f"You answer for {call.tenant_id}; the caller is {call.from_number}."
        self.voice = "cedar"


async def test_prepare_sets_the_session_from_who_is_calling(fake):
    call = FakeCall(info=CallInfo("CA1", "MZ1", tenant_id="acme", from_number="+15550001111"))
    assistant = PerTenant()
    await assistant.attach(call)
    await fake.wait_for(lambda: bool(fake.sessions), "the session")
    [session] = fake.sessions
    assert session["instructions"] == "You answer for acme; the caller is +15550001111."
    assert session["audio"]["output"]["voice"] == "cedar"
    assert PerTenant.instructions == "Generic.", "per call: the class is left as it was"
    await assistant.detach()


class Clumsy(RealtimeAssistant):
    instructions = "As the class says."

    async def prepare(self, call: CallInfo) -> None:
        raise KeyError("no such tenant")


async def test_a_prepare_that_raises_is_logged_and_the_call_goes_on(fake, caplog):
    caplog.set_level(logging.ERROR, logger="voiceflow_channels")
    raised = metric("voiceflow_internal_errors_total", where="prepare")
    assistant = Clumsy()
    await assistant.attach(FakeCall())
    await fake.wait_for(lambda: bool(fake.sessions), "the session")
    assert fake.sessions[0]["instructions"] == "As the class says."
    assert metric("voiceflow_internal_errors_total", where="prepare") == raised + 1
    assert "no such tenant" in caplog.text
    await assistant.detach()


async def test_a_barge_in_truncates_at_what_the_port_says_was_heard(fake):
    fake.script = Script(speed=None, replies=(Reply(audio_ms=2000),))
    call = FakeCall()
    assistant = RealtimeAssistant()
    await assistant.attach(call)
    await fake.wait_connections(1)
    say(assistant, 25)
    say(assistant, 30, SILENCE)
    await call.until(lambda: bool(call.ended))  # the answer, whole
    [key] = call.played
    call.heard[key] = 640  # the marks echoed so far
    say(assistant, 10)  # the caller talks over the answer
    await fake.wait_for(lambda: bool(fake.truncates), "the truncate")
    [truncate] = fake.truncates
    assert call.clears == 1
    assert (truncate.item_id, truncate.audio_end_ms, truncate.error) == (key, 640, None)
    await assistant.detach()


class Desk(RealtimeAssistant):
    transfers = {"sales": "+15557654321"}  # noqa: RUF012


async def test_a_transfer_the_port_refuses_is_told_to_the_model(fake):
    move = FunctionCall("transfer_call", '{"destination": "sales"}')
    fake.script = Script(speed=None, replies=(Reply(audio_ms=0, function_calls=(move,)),))
    call = FakeCall(refuse=frozenset({"+15557654321"}))
    assistant = Desk()
    await assistant.attach(call)
    await fake.wait_connections(1)
    say(assistant, 25)
    say(assistant, 30, SILENCE)
    await fake.wait_for(lambda: bool(fake.function_outputs), "the tool's output")
    [output] = fake.function_outputs
    assert output.output.startswith("The transfer failed (+15557654321 is not on the allowlist)")
    assert call.transferred_to is None and not call.hung_up
    await fake.wait_response_done(2)
    await assistant.detach()


def test_a_subclass_that_overrides_the_wiring_is_refused_at_its_definition():
    with pytest.raises(TypeError, match=r"Leaky overrides detach, hear: that is the call's wiring"):

        class Leaky(RealtimeAssistant):
            def hear(self, payload_b64: str) -> None:
                pass

            async def detach(self) -> None:
                pass
