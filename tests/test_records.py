"""Call records in the database: one row per call written after each leg (through the real
router), the caller's number masked unless asked, the switches, a database that is down (the
call unaffected, the failure counted, the next call recorded), prune, and the admin's pages with
the picture parsed. Run on SQLite here and on a real PostgreSQL server by test_records_postgres.
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
import re
import threading
import wave
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import OperationalError, connection
from django.db.backends.base.base import BaseDatabaseWrapper

from tests.realtime_twilio import Twilio
from tests.servers import Postgres
from tests.utils import (
    MS,
    STREAM,
    expect_server_close,
    mark_names,
    metric,
    send_all,
    take,
)
from voiceflow_channels.models import CallRecord
from voiceflow_channels.mulaw import FRAME_BYTES, mulaw_to_linear
from voiceflow_channels.realtime import RealtimeAssistant
from voiceflow_channels.records import writer
from voiceflow_channels.records.finished import FinishedLeg
from voiceflow_channels.records.tape import Tape
from voiceflow_channels.routing import build_router
from voiceflow_channels.testing import SimulatedCall
from voiceflow_channels.testing.fake_realtime import Reply, Script
from voiceflow_channels.testing.simulated_call import sid

pytestmark = pytest.mark.django_db(transaction=True)
SVG = "{http://www.w3.org/2000/svg}"


async def a_call(assistant, call: SimulatedCall, caller_frames: int = 0) -> None:
    """One stream through the real router: a second of speech played, 100 ms of it heard, then
    cleared (a barge-in), then Twilio's stop."""
    from channels.testing import WebsocketCommunicator

    ws = WebsocketCommunicator(build_router(consumer=assistant), STREAM)
    assert (await ws.connect())[0]
    await send_all(ws, [call.connected(), call.start()])
    consumer = await assistant.started.get()
    await send_all(ws, [call.media() for _ in range(caller_frames)])
    await consumer.play(b"\x10" * 1000 * MS, "speech")
    names = mark_names(await take(ws, 6))
    await ws.send_to(text_data=call.mark(names[0]))
    await take(ws, 2)  # the echo refilled the lead: it was handled
    await consumer.clear()
    await send_all(ws, [call.stop()])
    await expect_server_close(ws)
    await writer.written()


async def test_a_call_is_recorded_at_its_end_with_its_figures_and_timeline(assistant):
    # As the voice webhook's <Parameter>s give them: the tenant, the caller, the number dialled.
    parameters = {"tenant_id": "t1", "from_number": "+15550000001", "to_number": "+15550009999"}
    await a_call(assistant, SimulatedCall(n=1, parameters=parameters))
    record = await CallRecord.objects.aget(call_sid=sid("CA", 1))
    assert record.tenant == "t1"
    assert record.caller == "********0001", "masked as the logs mask it"
    assert record.called == "+15550009999", "the number dialled, whole: it is the shop's own"
    assert record.ended == "caller_hung_up" and record.reconnects == 0
    assert record.figures["played_ms"] == 100 and record.figures["cleared_ms"] == 900
    assert record.figures["frames"] == 0 and record.figures["drops"] == "-"
    assert record.started_at <= record.ended_at
    [leg] = record.legs
    kinds = [e["kind"] for e in leg["events"]]
    assert kinds == ["utterance", "end"]
    utterance = leg["events"][0]
    assert (utterance["ms"], utterance["cut_ms"], utterance["label"]) == (100, 900, "speech")
    assert record.transcript == [], "words only when asked"


async def test_the_callers_number_is_kept_whole_only_when_asked(assistant, settings):
    settings.VOICEFLOW_RECORD_CALLER_NUMBER = "1"
    await a_call(assistant, SimulatedCall(n=2))
    record = await CallRecord.objects.aget(call_sid=sid("CA", 2))
    assert record.caller == "+15550000001"


async def test_no_record_when_call_records_are_off(assistant, settings):
    settings.VOICEFLOW_CALL_RECORDS = "0"
    await a_call(assistant, SimulatedCall(n=3))
    assert await CallRecord.objects.acount() == 0


async def test_a_call_that_moved_is_one_row_with_a_leg_per_stream(assistant):
    first = SimulatedCall(n=4)
    second = SimulatedCall(n=4)
    second.stream_sid = sid("MZ", 40)
    await a_call(assistant, first)
    await a_call(assistant, second)
    record = await CallRecord.objects.aget(call_sid=sid("CA", 4))
    assert [leg["stream_sid"] for leg in record.legs] == [first.stream_sid, second.stream_sid]
    assert record.reconnects == 1
    assert record.figures["played_ms"] == 200, "the legs' figures added up"
    await writer.write(_leg(sid("CA", 4), second.stream_sid))  # the same leg again: replaced
    record = await CallRecord.objects.aget(call_sid=sid("CA", 4))
    assert len(record.legs) == 2


async def test_a_database_that_is_down_costs_a_counted_failure_and_nothing_else(
    assistant, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="voiceflow_channels")
    failed = metric("voiceflow_call_records_failed_total")

    def down(self):
        raise OperationalError("connection refused: the database is down")

    with monkeypatch.context() as patch:
        patch.setattr(BaseDatabaseWrapper, "ensure_connection", down)
        await a_call(assistant, SimulatedCall(n=5))  # the call ends as it would
    assert metric("voiceflow_call_records_failed_total") == failed + 1
    [line] = [r.getMessage() for r in caplog.records if "could not write" in r.getMessage()]
    assert sid("CA", 5) in line and "the database is down" in line
    assert any("call ended (stop)" in r.getMessage() for r in caplog.records)
    await a_call(assistant, SimulatedCall(n=6))  # the database is back: recorded again
    assert await CallRecord.objects.filter(call_sid=sid("CA", 6)).aexists()
    assert not await CallRecord.objects.filter(call_sid=sid("CA", 5)).aexists()


async def test_calls_ending_together_are_all_recorded_one_at_a_time(monkeypatch):
    """A burst of ends (a drain, a deploy): every record written, by the records' one thread,
    never two at once (SQLite refused concurrent writers with "database is locked")."""
    save, writing, most, threads = writer.save_leg, 0, 0, set()

    def watched(leg: FinishedLeg) -> CallRecord:
        nonlocal writing, most
        writing += 1
        most = max(most, writing)
        threads.add(threading.current_thread().name)
        try:
            return save(leg)
        finally:
            writing -= 1

    failed = metric("voiceflow_call_records_failed_total")
    monkeypatch.setattr(writer, "save_leg", watched)
    for n in range(20):
        writer.write_soon(_leg(sid("CA", 100 + n), sid("MZ", 100 + n)))
    await writer.written()
    assert await CallRecord.objects.acount() == 20
    assert metric("voiceflow_call_records_failed_total") == failed
    assert most == 1 and len(threads) == 1 and threads.pop().startswith("voiceflow-records")


class Plain(RealtimeAssistant):
    instructions = "Answer."
    said: asyncio.Event

    async def on_transcript(self, role: str, text: str) -> None:
        if role == "assistant":
            Plain.said.set()


async def test_an_assistants_call_keeps_its_words_when_asked(fake, fresh_cache, settings):
    settings.VOICEFLOW_RECORD_TRANSCRIPTS = "1"
    Plain.said = asyncio.Event()
    answer = Reply(audio_ms=4000, transcript="Our shop opens at nine and closes at six.")
    fake.script = Script(speed=2.0, replies=(answer,))
    twilio = Twilio(Plain, n=7)
    await twilio.start()
    await fake.wait_connections(1)
    await twilio.say(25)
    await twilio.pause()
    marks: list[str] = []

    def two_seconds(message: dict) -> bool:
        if message["event"] == "mark":
            marks.append(message["mark"]["name"])
        return len(marks) == 20

    await twilio.play_until(two_seconds)  # half the answer heard
    await twilio.say(10)  # the caller talks over the answer
    await twilio.play_until(lambda m: m["event"] == "clear", echo=False)
    await asyncio.wait_for(Plain.said.wait(), 10)  # the cut answer's words came back
    await twilio.pause()
    await twilio.hang_up()
    await writer.written()
    record = await CallRecord.objects.aget(call_sid=sid("CA", 7))
    assert record.turns == 1 and record.barge_ins == 1
    kinds = [e["kind"] for e in record.legs[0]["events"]]
    assert kinds.count("speech") == 2 and "barge_in" in kinds and kinds[-1] == "end"
    roles = [line["role"] for line in record.transcript]
    assert "assistant" in roles
    said = next(line["text"] for line in record.transcript if line["role"] == "assistant")
    assert said and len(said) < len(answer.transcript), "the words as heard: cut at the barge-in"


def _leg(call_sid: str, stream_sid: str, *, days_ago: int = 0, tape: Tape | None = None):
    start = datetime.now(UTC) - timedelta(days=days_ago, seconds=10)
    events = [
        {"kind": "speech", "at_ms": 500, "ms": 1500},
        {"kind": "utterance", "at_ms": 2500, "ms": 1200, "cut_ms": 800, "label": "resp"},
        {"kind": "barge_in", "at_ms": 3700},
        {"kind": "chime", "at_ms": 4200, "ms": 600, "cut_ms": 100},
        {"kind": "tool", "at_ms": 4000, "ms": 1100, "label": "check_order_status"},
        {"kind": "end", "at_ms": 9000, "label": "stop"},
    ]
    return FinishedLeg(
        call_sid,
        stream_sid,
        "shop-1",
        "********4567",
        start,
        start + timedelta(seconds=9),
        "stop",
        {"turns": 2, "barge_ins": 1, "played_ms": 2400},
        events,
        transcript=[{"role": "user", "text": "When do you <b>open</b>?"}],
        tape=tape,
    )


def test_prune_deletes_old_records_and_their_audio_dry_run_first(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    writer.save_leg(_leg(sid("CA", 8), sid("MZ", 8), days_ago=31, tape=Tape()))
    writer.save_leg(_leg(sid("CA", 9), sid("MZ", 9), days_ago=1))
    [old_audio] = CallRecord.objects.get(call_sid=sid("CA", 8)).audio_files
    assert default_storage.exists(old_audio)
    call_command("voiceflow_prune", "--dry-run", stdout=(out := _Out()))
    assert "would delete 1 call records and 1 audio files" in out.text
    assert CallRecord.objects.count() == 2 and default_storage.exists(old_audio)
    call_command("voiceflow_prune", stdout=(out := _Out()))
    assert "deleted 1 call records and 1 audio files" in out.text
    assert list(CallRecord.objects.values_list("call_sid", flat=True)) == [sid("CA", 9)]
    assert not default_storage.exists(old_audio)
    settings.VOICEFLOW_RECORDS_RETENTION_DAYS = 1
    call_command("voiceflow_prune", stdout=(out := _Out()))
    assert CallRecord.objects.count() == 0


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


CHANGELIST = "/admin/voiceflow_channels/callrecord/"


def test_the_admin_lists_searches_and_shows_a_call_read_only(admin_client, settings):
    settings.VOICEFLOW_RECORD_TRANSCRIPTS = "1"
    record = writer.save_leg(_leg(sid("CA", 10), sid("MZ", 10)))
    writer.save_leg(_leg(sid("CA", 11), sid("MZ", 11)))
    page = admin_client.get(CHANGELIST).content.decode()
    for column in ("Started at", "Caller", "Duration", "Turns", "Barge ins", "How it ended"):
        assert column in page
    assert "9.0 s" in page and "caller_hung_up" in page and page.count("********4567") == 2
    found = admin_client.get(CHANGELIST, {"q": sid("CA", 10)}).content.decode()
    assert sid("CA", 10) in found and sid("CA", 11) not in found
    assert sid("CA", 10) not in admin_client.get(CHANGELIST, {"q": "CAnothing"}).content.decode()
    filtered = admin_client.get(CHANGELIST, {"ended": "hangup"}).content.decode()
    assert sid("CA", 10) not in filtered
    response = admin_client.get(f"{CHANGELIST}{record.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="_save"' not in page, "read-only: records are evidence"
    assert "When do you &lt;b&gt;open&lt;/b&gt;?" in page, "the transcript, escaped"
    assert "not kept (VOICEFLOW_RECORD_AUDIO is off)" in page
    assert "<th>played_ms</th><td>2400</td>" in page
    root = ET.fromstring(re.search(r"<svg[^>]*voiceflow-timeline.*?</svg>", page, re.S).group(0))
    lanes = [g.get("data-lane") for g in root.iter(SVG + "g")]
    assert lanes == ["caller", "assistant", "tools"]
    drawn = [e.get("class") for e in root.iter() if e.get("class")]
    for what in ("speech", "played", "cut", "chime", "tool", "barge-in", "end", "tick"):
        assert what in drawn, what
    assert admin_client.post(f"{CHANGELIST}{record.pk}/delete/").status_code in (200, 302)


def test_the_audio_player_plays_the_kept_recording(admin_client, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    record = writer.save_leg(_leg(sid("CA", 12), sid("MZ", 12), tape=Tape()))
    page = admin_client.get(f"{CHANGELIST}{record.pk}/change/").content.decode()
    [name] = record.audio_files
    assert f'<audio controls preload="none" src="/media/{name}">' in page
    with default_storage.open(name) as kept, wave.open(kept) as wav:
        assert wav.getnchannels() == 2


def test_an_anonymous_visitor_sees_no_records(client):
    writer.save_leg(_leg(sid("CA", 13), sid("MZ", 13)))
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


async def test_the_calls_audio_is_kept_as_a_stereo_wav_only_when_asked(
    assistant, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    call = SimulatedCall(n=14, audio=bytes([0x10]) * FRAME_BYTES)  # a loud caller
    await a_call(assistant, call, caller_frames=50)
    record = await CallRecord.objects.aget(call_sid=sid("CA", 14))
    assert record.audio_files == []
    settings.VOICEFLOW_RECORD_AUDIO = "1"
    call = SimulatedCall(n=15, audio=bytes([0x10]) * FRAME_BYTES)
    await a_call(assistant, call, caller_frames=50)
    record = await CallRecord.objects.aget(call_sid=sid("CA", 15))
    [name] = record.audio_files
    with wave.open(str(tmp_path / name)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        samples = array.array("h", wav.readframes(wav.getnframes()))
    caller, heard = samples[0::2], samples[1::2]
    loud = mulaw_to_linear(bytes([0x10]))[0]
    assert list(caller[: 50 * FRAME_BYTES]) == [loud] * (50 * FRAME_BYTES), "what they said"
    assert heard.count(loud) < 1000 * MS, "not the part the clear cut (test_records_picture)"


@pytest.mark.skipif(
    not os.environ.get("VOICEFLOW_TEST_POSTGRES_DIR"),
    reason="needs the PostgreSQL server test_records_postgres.py starts, to stop it",
)
def test_a_postgresql_server_that_goes_down_and_comes_back(assistant):
    """Last in the file: the outage cuts the connections the tests before it hold."""
    server = Postgres.running_at(
        os.environ["DATABASE_URL"], os.environ["VOICEFLOW_TEST_POSTGRES_DIR"]
    )
    failed = metric("voiceflow_call_records_failed_total")
    server.stop(remove=False)
    try:
        async_to_sync(a_call)(assistant, SimulatedCall(n=15))  # ends as it would
    finally:
        server.start()
    assert metric("voiceflow_call_records_failed_total") == failed + 1
    connection.close()  # the test's own connection went down with the server
    assistant.started = asyncio.Queue()  # the next call runs on a new event loop
    async_to_sync(a_call)(assistant, SimulatedCall(n=16))
    assert CallRecord.objects.filter(call_sid=sid("CA", 16)).exists()
    assert connection.vendor == "postgresql"
