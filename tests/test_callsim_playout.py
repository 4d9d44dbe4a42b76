"""The call simulator plays Twilio's side of outbound audio: against a small in-test server that
answers keypresses with audio, marks and clears, as an assistant would."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from websockets.asyncio.server import ServerConnection, serve

from voiceflow_channels.mulaw import mulaw_to_linear
from voiceflow_channels.testing import CallResult, SimulatedCall, callsim
from voiceflow_channels.testing.script import parse_press, press_frames

CHUNK = b"\x10" * 800  # 100 ms of loud mu-law: anything but silence
CHUNKS = 3
# The playout keeps time in samples: a mark can echo half a sample (62.5 us) early.
SAMPLE = 1 / 8000


@dataclass
class Counterpart:
    """The server end of each call. On `1` it speaks 300 ms (after `delay` s) in 100 ms media
    messages each followed by a mark, the last named `.end`; with `starve`, each chunk goes
    `starve` s after the echo of the mark before it, so the buffer runs dry mid-utterance. On `#`
    it sends clear; on `9`, messages Twilio could not play. It notes when every message came and
    went (loop time), and closes after `stop` as our server does."""

    delay: float = 0.0
    starve: float | None = None
    url: str = ""
    got: list[tuple[float, dict]] = field(default_factory=list)
    sent: list[tuple[float, str]] = field(default_factory=list)

    async def handle(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        echoes: asyncio.Queue[str] = asyncio.Queue()
        speaking: list[asyncio.Task] = []
        stream_sid = ""
        async for text in ws:
            d = json.loads(text)
            self.got.append((loop.time(), d))
            if d["event"] == "start":
                stream_sid = d["streamSid"]
            elif d["event"] == "mark":
                echoes.put_nowait(d["mark"]["name"])
            elif d["event"] == "dtmf":
                key = d["dtmf"]["digit"]
                if key == "1":
                    speaking.append(asyncio.create_task(self.speak(ws, stream_sid, echoes)))
                elif key == "#":
                    await self.send(ws, "clear", {"event": "clear", "streamSid": stream_sid})
                elif key == "9":
                    await self.babble(ws, stream_sid)
            elif d["event"] == "stop":
                break
        for task in speaking:
            task.cancel()
        await ws.close()

    async def speak(self, ws: ServerConnection, stream_sid: str, echoes: asyncio.Queue) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        payload = base64.b64encode(CHUNK).decode()
        for i in range(1, CHUNKS + 1):
            name = f"u.{i}.end" if i == CHUNKS else f"u.{i}"
            media = {"event": "media", "streamSid": stream_sid, "media": {"payload": payload}}
            await self.send(ws, "media", media)
            await self.send(
                ws, name, {"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}
            )
            if self.starve is not None and i < CHUNKS:
                while await echoes.get() != name:
                    pass
                await asyncio.sleep(self.starve)

    async def babble(self, ws: ServerConnection, stream_sid: str) -> None:
        for message in (
            "not json",
            json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": "!!"}}),
            json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {}}),
            json.dumps({"event": "clear", "streamSid": "MZ-another-call"}),
            json.dumps({"event": "dance", "streamSid": stream_sid}),
        ):
            await ws.send(message)
        await ws.send(b"\x00\x01")

    async def send(self, ws: ServerConnection, what: str, message: dict) -> None:
        self.sent.append((asyncio.get_running_loop().time(), what))
        await ws.send(json.dumps(message))

    def echoes(self) -> list[tuple[float, str]]:
        return [(at, d["mark"]["name"]) for at, d in self.got if d["event"] == "mark"]

    def sent_at(self, what: str) -> list[float]:
        return [at for at, name in self.sent if name == what]


@asynccontextmanager
async def twilio_counterpart(**behaviour: float) -> AsyncIterator[Counterpart]:
    counterpart = Counterpart(**behaviour)
    async with serve(counterpart.handle, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        counterpart.url = f"ws://127.0.0.1:{port}/twilio/stream"
        yield counterpart


async def one_call(server: Counterpart, **options) -> CallResult:
    result = await callsim.run(server.url, 1, 1.0, realtime=True, **options)
    (call,) = result.calls
    assert call.ok, call.error
    return call


def tone_samples(path: Path) -> tuple[int, list[int]]:
    """A recording's length in samples, and the indexes of its samples that are not silence."""
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        frames = wav.readframes(wav.getnframes())
    samples = mulaw_to_linear(b"")
    samples.frombytes(frames)
    return len(samples), [i for i, v in enumerate(samples) if v]


async def test_marks_echo_once_their_audio_has_played_in_the_calls_numbering():
    async with twilio_counterpart() as server:
        call = await one_call(server, presses=((0.2, "1"),))
    echoes = server.echoes()
    assert [name for _, name in echoes] == ["u.1", "u.2", "u.3.end"]
    first_audio = server.sent_at("media")[0]
    for k, (at, _) in enumerate(echoes, 1):
        assert at - first_audio >= k * 0.1 - SAMPLE, f"mark {k} echoed before its audio played"
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(echoes)]
    assert gaps == pytest.approx([0.1, 0.1], abs=0.03)
    # An echo is the next message of the call: Twilio numbers every event in one sequence.
    numbers = [int(d["sequenceNumber"]) for _, d in server.got if "sequenceNumber" in d]
    assert numbers == list(range(1, len(numbers) + 1))
    assert {d["streamSid"] for _, d in server.got if d["event"] == "mark"} == {
        SimulatedCall(1).stream_sid
    }
    (press,) = call.pressed
    assert press[1] == "1"
    assert press[0] <= next(at for at, d in server.got if d["event"] == "dtmf")
    assert (call.audio_ms, call.underruns, call.clears, call.marks_echoed) == (300, 0, 0, 3)
    assert call.max_outstanding_ms == pytest.approx(300, abs=5)
    assert call.clear_ms is None


async def test_wait_to_chime_runs_from_the_wait_key_to_the_first_audio_after_it():
    async with twilio_counterpart(delay=0.15) as server:
        call = await one_call(server, presses=((0.1, "1"),))
    assert 150 <= call.wait_to_chime_ms < 250
    assert call.wait_to_chime_ms == pytest.approx(
        (server.sent_at("media")[0] - call.pressed[0][0]) * 1000, abs=20
    )
    assert "chime after" in call.line()


async def test_another_wait_key_is_timed_instead(tmp_path):
    async with twilio_counterpart() as server:
        call = await one_call(server, presses=((0.1, "1"),), wait_key="#")
    assert call.wait_to_chime_ms is None, "1 is not the wait key"
    assert call.clear_ms == (), "1 was answered with audio, not a clear"


async def test_clear_echoes_the_pending_marks_at_once_and_drops_their_audio(tmp_path):
    async with twilio_counterpart() as server:
        call = await one_call(server, presses=((0.2, "1"), (0.36, "#")), record=tmp_path)
    (cleared,) = server.sent_at("clear")
    first_audio = server.sent_at("media")[0]
    echoes = server.echoes()
    assert [name for _, name in echoes] == ["u.1", "u.2", "u.3.end"]
    assert echoes[0][0] - first_audio >= 0.1 - SAMPLE, "u.1 played before the clear"
    for k, (at, name) in enumerate(echoes[1:], 2):
        assert at < first_audio + k * 0.1, f"{name} waited for audio the clear dropped"
        assert at - cleared < 0.03, f"{name} was not echoed at once"
    (clear_ms,) = call.clear_ms
    assert 0 < clear_ms < 50
    assert call.wait_to_chime_ms < 50
    assert (call.clears, call.marks_echoed, call.underruns, call.audio_ms) == (1, 3, 0, 300)
    _, tone = tone_samples(call.recording)
    # Heard from the first audio to the clear, 160 ms as sent; the rest was dropped.
    assert len(tone) == pytest.approx(0.16 * 8000, abs=0.03 * 8000)
    assert tone == list(range(tone[0], tone[0] + len(tone)))


async def test_a_starved_stream_counts_underruns():
    async with twilio_counterpart(starve=0.05) as server:
        call = await one_call(server, presses=((0.2, "1"),))
    assert [name for _, name in server.echoes()] == ["u.1", "u.2", "u.3.end"]
    assert call.underruns == 2, "the buffer ran dry before the 2nd and the 3rd chunk"
    assert call.max_outstanding_ms == pytest.approx(100, abs=5)
    assert call.audio_ms == 300


async def test_the_recording_is_the_call_long_with_silence_where_nothing_played(tmp_path):
    where = tmp_path / "heard" / "today"
    async with twilio_counterpart() as server:
        call = await one_call(server, presses=((0.2, "1"),), record=where)
    assert call.recording == where / f"{call.call_sid}.wav"
    length, tone = tone_samples(call.recording)
    assert length == 8000, "one second of call"
    assert tone == list(range(tone[0], tone[0] + 2400)), "300 ms of audio, in one piece"
    assert 0.2 <= tone[0] / 8000 < 0.3, "from the keypress at 0.2 s"


async def test_unplayable_server_messages_are_counted_and_the_call_plays_on():
    async with twilio_counterpart() as server:
        call = await one_call(server, presses=((0.1, "9"), (0.2, "1")))
    assert (call.malformed, call.unknown) == (5, 1)
    assert (call.audio_ms, call.marks_echoed) == (300, 3)
    assert "5 malformed, 1 unknown" in call.line()


async def test_a_call_the_server_never_speaks_to_heard_nothing():
    async with twilio_counterpart() as server:
        result = await callsim.run(server.url, 2, 0.2, realtime=False)
    for call in result.calls:
        assert call.ok
        assert (call.audio_ms, call.underruns, call.marks_echoed) == (None, None, None)
        assert (call.pressed, call.wait_to_chime_ms, call.clear_ms) == ((), None, None)
        assert (call.malformed, call.unknown, call.recording) == (0, 0, None)
        assert call.line().endswith(": nothing to play")


async def test_the_command_presses_keys_records_and_reports_each_call(tmp_path):
    out = StringIO()
    async with twilio_counterpart() as server:
        await asyncio.to_thread(
            call_command,
            "voiceflow_callsim",
            *("--url", server.url, "--seconds", "1", "--record", str(tmp_path)),
            *("--press", "1@0.2", "--press", "#@0.36"),
            stdout=out,
            stderr=StringIO(),
        )
    sid = SimulatedCall(1).call_sid
    lines = out.getvalue().splitlines()
    (line,) = [line for line in lines if line.startswith(f"call 1 {sid}: ")]
    assert "audio 300 ms, chime after " in line
    assert ", clears after [" in line
    assert ", underruns 0, most outstanding " in line
    assert f"what each caller heard: 1 WAV files, {tmp_path.resolve()}/<callSid>.wav" in lines
    assert (tmp_path / f"{sid}.wav").is_file()
    assert any(line.startswith("1 calls (realtime)") for line in lines)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--press", "1@x"], "bad keypress '1@x'"),
        (["--press", "X@0.5"], "bad keypress 'X@0.5'"),
        (["--press", "1"], "bad keypress '1'"),
        (["--press", "1@nan"], "bad keypress '1@nan'"),
        (["--press", "1@9"], "bad keypress 1@9: the time must be within the call, 0 to 5 s"),
        (["--press", "#@-1", "--seconds", "2"], "bad keypress #@-1: .* 0 to 2 s"),
        (["--wait-key", "11"], "the wait key must be one of 0-9 \\* # A-D, not '11'"),
    ],
)
def test_a_bad_keypress_is_a_command_error_that_names_it(options, message):
    with pytest.raises(CommandError, match=message):
        call_command("voiceflow_callsim", *options)


async def test_run_rejects_a_bad_key_before_connecting():
    with pytest.raises(ValueError, match=r"bad keypress '11'@0\.5"):
        await callsim.run("ws://127.0.0.1:9/twilio/stream", 1, 1, True, presses=((0.5, "11"),))


def test_a_press_goes_after_the_media_frame_sent_at_its_time():
    presses = [(5.0, "3"), (0.0, "1"), (0.5, "#"), (0.5, "2"), (0.99, "D")]
    assert press_frames(presses, 5.0, 250) == {1: "1", 26: "#2", 51: "D", 250: "3"}
    events = [json.loads(m) for m in SimulatedCall().whole_call(3, presses={2: "#2"})]
    assert [(e["event"], e.get("dtmf", {}).get("digit")) for e in events[2:]] == [
        ("media", None),
        ("media", None),
        ("dtmf", "#"),
        ("dtmf", "2"),
        ("media", None),
        ("stop", None),
    ]
    assert parse_press("#@4") == (4.0, "#")
