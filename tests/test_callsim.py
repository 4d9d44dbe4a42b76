"""The call simulator against a real daphne, and the `voiceflow_callsim` command's arguments."""

from __future__ import annotations

import base64
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.streams import StreamReader

from tests.servers import SERVERS, Daphne, free_port
from voiceflow_channels.management.commands.voiceflow_callsim import Command
from voiceflow_channels.testing import SimulatedCall, callsim
from voiceflow_channels.testing.frames import text_frame
from voiceflow_channels.testing.listener import Listener
from voiceflow_channels.testing.pacer import Pacer
from voiceflow_channels.testing.results import Progress, Sent


@pytest.fixture(params=SERVERS)
def daphne_on(request):
    server = Daphne(request.param, VOZ_FEATURE_VOICE_FLOW_A="1")
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
    assert " ms per call-second" in out.getvalue()
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--press", "1@9"], "the time must be within the call"),
        (["--wait-key", "x"], "the wait key must be one of"),
        (["--talk", "1:2", "--talk", "2:2"], "overlap"),
        (["--silent", "--press", "1@0.5"], "a silent call neither presses keys nor talks"),
    ],
)
def test_arguments_are_checked_before_anything_plays(monkeypatch, args, message):
    played = []
    monkeypatch.setattr(callsim, "run", lambda *a, **kw: played.append(a))
    with pytest.raises(CommandError, match=message):
        call_command("voiceflow_callsim", "--seconds", "5", *args)
    assert not played


def test_an_error_inside_the_run_keeps_its_traceback(monkeypatch):
    async def broken(*args, **kwargs):
        raise ValueError("a bug in the simulator")

    monkeypatch.setattr(callsim, "run", broken)
    with pytest.raises(ValueError, match="a bug in the simulator"):
        call_command("voiceflow_callsim", "--seconds", "1")


async def test_a_silent_call_sends_silence_and_no_keys(daphne_on):
    result = await callsim.run(daphne_on.url, 1, 3.0, realtime=False, silent=True)
    [call] = result.calls
    assert call.ok, call.error
    # 150 media frames, a mark each 100, no dtmf: the connected, start and stop besides.
    assert (call.media_frames, call.messages, call.pressed) == (150, 154, ())
    daphne_on.wait_for(rf"call ended \(stop\) callSid={call.call_sid}.* dtmf=0 ")


def test_nothing_listening_is_a_command_error_that_names_the_cause():
    err = StringIO()
    url = f"ws://127.0.0.1:{free_port()}/twilio/stream"
    with pytest.raises(CommandError, match="1 of 1 calls failed"):
        call_command("voiceflow_callsim", "--url", url, "--seconds", "0.1", stderr=err)
    assert "connect: ConnectionRefusedError" in err.getvalue()


def unframe(raw: bytes) -> list[str]:
    """The texts of the masked websocket frames in `raw`, as a server reads them."""
    reader = StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    texts = []
    while reader.buffer:
        parsing = Frame.parse(reader.read_exact, mask=True)
        try:
            next(parsing)
        except StopIteration as parsed:
            frame = parsed.value
        assert frame.opcode is Opcode.TEXT and frame.fin
        texts.append(frame.data.decode())
    return texts


def test_media_renders_as_json_dumps_would_and_frames_as_websockets_would():
    call = SimulatedCall(7, audio=bytes(range(160)))
    call.start()
    call.media()
    assert call.media() == json.dumps(
        {
            "event": "media",
            "sequenceNumber": "3",
            "streamSid": call.stream_sid,
            "media": {
                "track": "inbound",
                "chunk": "2",
                "timestamp": "40",
                "payload": base64.b64encode(bytes(range(160))).decode(),
            },
        }
    )
    texts = [call.connected(), call.media(), "x" * 125, "x" * 126, "é" * 40_000, "y" * 70_000]
    assert unframe(b"".join(text_frame(text) for text in texts)) == texts


def test_a_frame_with_given_audio_renders_as_json_dumps_would():
    call = SimulatedCall(7)
    call.start()
    call.media()
    assert call.media_with(bytes(range(160))) == json.dumps(
        {
            "event": "media",
            "sequenceNumber": "3",
            "streamSid": call.stream_sid,
            "media": {
                "track": "inbound",
                "chunk": "2",
                "timestamp": "40",
                "payload": base64.b64encode(bytes(range(160))).decode(),
            },
        }
    )


class Transport:
    """Takes the pacer's writes; reports a full write buffer on the checks in `full`."""

    def __init__(self, full: range) -> None:
        self.full = full
        self.checks = 0
        self.writes: list[bytes] = []

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return 0, 1000

    def get_write_buffer_size(self) -> int:
        self.checks += 1
        return 5000 if self.checks in self.full else 0

    def write(self, data: bytes) -> None:
        self.writes.append(data)


class Socket:
    state = State.OPEN
    close_code = None

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


async def test_a_full_write_buffer_holds_frames_back_then_they_go_at_once_in_order():
    transport = Transport(full=range(3, 6))
    ws = Socket(transport)
    call = SimulatedCall(1)
    pacer = Pacer(Progress(1))
    listener = Listener(ws, call, pacer.start(), "", "1", False)
    sent = Sent()
    await pacer.play(call.steps(10, mark_every=4), ws, listener, sent)
    # Three frames' times wait (the 3rd to the 5th check); the next sends the frames due by then
    # at once: at least four (exactly four unless a tick ran late), as a server behind would see.
    assert sent.held_back == 3
    media = [[json.loads(t)["event"] for t in unframe(w)].count("media") for w in transport.writes]
    assert media[2] >= 4 and sum(media) == 10
    texts = [t for w in transport.writes for t in unframe(w)] + ws.sent
    events = [json.loads(t) for t in texts]
    assert [e["event"] for e in events].count("mark") == 2
    assert events[-1]["event"] == "stop"
    numbers = [int(e["sequenceNumber"]) for e in events[1:]]
    assert numbers == list(range(1, len(events)))
    assert (sent.media, sent.messages) == (10, len(events))
    assert listener.result(sent, None, None).held_back == 3
