"""The call simulator against a real daphne, and the `voiceflow_callsim` command's arguments."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.servers import Daphne, free_port
from voiceflow_channels import callsim
from voiceflow_channels.management.commands.voiceflow_callsim import Command


@pytest.fixture
def daphne_on():
    server = Daphne(VOZ_FEATURE_VOICE_FLOW_A="1")
    try:
        yield server
    finally:
        server.stop()


async def test_flat_out_calls_are_each_handled_whole_by_the_server(daphne_on):
    # 2.5 s of audio: 125 media frames, so each call also sends one mark and one dtmf.
    result = await callsim.run(daphne_on.url, 3, 2.5, realtime=False, first=101)
    assert not result.failed
    assert [(c.n, c.media_frames, c.messages, c.close_code) for c in result.calls] == [
        (n, 125, 130, 1000) for n in (101, 102, 103)
    ]
    assert result.media_frames == 375
    summaries = daphne_on.wait_for(
        r"call ended \(stop\) callSid=CA0+6[567] .* frames=125 bytes=20000 gaps=0 out_of_order=0 "
        r"marks=1 dtmf=1 unknown=0 malformed=0",
        count=3,
    )
    assert {line.split("callSid=")[1].split()[0] for line in summaries} == {
        c.call_sid for c in result.calls
    }


async def test_realtime_calls_carry_the_tenant_and_end_cleanly(daphne_on):
    result = await callsim.run(daphne_on.url, 2, 0.2, realtime=True, tenant="acme", first=201)
    assert not result.failed
    assert [c.media_frames for c in result.calls] == [10, 10]
    daphne_on.wait_for(r"call ended \(stop\) callSid=CA0+c[9a] .*tenant=acme .*frames=10 ", count=2)


def test_the_command_reports_what_it_sent(daphne_on):
    out = StringIO()
    call_command(
        "voiceflow_callsim",
        *("--url", daphne_on.url, "--calls", "2", "--seconds", "1", "--flat-out"),
        *("--first", "301"),
        stdout=out,
        stderr=StringIO(),
    )
    assert "2 calls (flat-out)" in out.getvalue()
    assert "2 connected" in out.getvalue()
    assert "100 media frames (106 messages) sent" in out.getvalue()
    daphne_on.wait_for(r"call ended \(stop\) callSid=CA0+12[de] .*frames=50 ", count=2)


def test_realtime_is_the_default_and_flat_out_turns_it_off():
    parser = Command().create_parser("manage.py", "voiceflow_callsim")
    assert parser.parse_args([]).realtime is True
    assert parser.parse_args(["--realtime"]).realtime is True
    assert parser.parse_args(["--flat-out"]).realtime is False


def test_realtime_and_flat_out_are_mutually_exclusive():
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("voiceflow_callsim", "--realtime", "--flat-out")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/twilio/stream", "127.0.0.1:8000", "ws://", "not a url"]
)
def test_a_bad_url_is_a_command_error(url):
    with pytest.raises(CommandError, match="not a ws:// or wss:// URL"):
        call_command("voiceflow_callsim", "--url", url)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--calls", "0", "calls must be"),
        ("--seconds", "0", "seconds must be"),
        ("--first", "-1", "--first must be"),
        ("--close-timeout", "0", "--close-timeout"),
    ],
)
def test_out_of_range_numbers_are_command_errors(option, value, message):
    with pytest.raises(CommandError, match=message):
        call_command("voiceflow_callsim", option, value)


def test_nothing_listening_is_a_command_error_that_names_the_cause():
    err = StringIO()
    url = f"ws://127.0.0.1:{free_port()}/twilio/stream"
    with pytest.raises(CommandError, match="1 of 1 calls failed"):
        call_command("voiceflow_callsim", "--url", url, "--seconds", "0.1", stderr=err)
    assert "connect: ConnectionRefusedError" in err.getvalue()
