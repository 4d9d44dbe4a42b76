"""Each finished leg into its call's record: one row per call (keyed by CallSid, a leg added
per stream), written in the records' own thread after the leg ends, never on the event loop and
never delaying the call's end. A database that is down or slow costs a logged and counted
failure (`voiceflow_call_records_failed`) and nothing else; the next call tries again.

One thread writes a process's records, one after another: a burst of calls ending together (a
drain, a deploy, a benchmark's round) holds one database connection per process rather than one
per worker of the loop's default pool (which it would also keep from the loop's other work), and
SQLite sees one writer: with several, each ending call's transaction (a read, then a write) was
refused at once with "database is locked" (300 and 348 of 500 calls in a benchmark run)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, close_old_connections, transaction

from .. import metrics
from ..models import CallRecord
from ..tasks import spawn
from .finished import FinishedLeg

log = logging.getLogger("voiceflow_channels")
# The writes in flight, for `written` to wait on.
PENDING: set[asyncio.Task[None]] = set()
WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voiceflow-records")
# Figures that are quantiles: a call's is its worst leg's, not a sum.
QUANTILE_SUFFIXES = ("_p50", "_p95", "_p99_ms")


def write_soon(leg: FinishedLeg) -> None:
    """Write `leg` in the background: the caller (the call's end) does not wait for it."""
    task = spawn(write(leg), "records.write")
    PENDING.add(task)
    task.add_done_callback(PENDING.discard)


async def written() -> None:
    """Return once every write in flight is done (tests, and a process about to exit)."""
    while PENDING:
        await asyncio.gather(*PENDING)


async def write(leg: FinishedLeg) -> None:
    """Write `leg` off the event loop; a failure is logged once and counted, never raised."""
    try:
        await sync_to_async(_write_in_thread, thread_sensitive=False, executor=WRITER)(leg)
    except Exception as exc:
        metrics.CALL_RECORDS_FAILED.inc()
        log.warning(
            "voiceflow could not write the record of callSid=%s (%s: %s); the call was not "
            "affected",
            leg.call_sid,
            type(exc).__name__,
            exc,
        )
    else:
        metrics.CALL_RECORDS_WRITTEN.inc()


def _write_in_thread(leg: FinishedLeg) -> None:
    close_old_connections()  # a connection a down database broke is replaced, not reused
    try:
        save_leg(leg)
    finally:
        close_old_connections()


def save_leg(leg: FinishedLeg) -> CallRecord:
    """Add `leg` to its call's record (created by its first leg); a leg already there (the same
    stream) is replaced, so writing one twice changes nothing."""
    entry = leg.leg()
    if leg.tape is not None:
        name = f"voiceflow/calls/{leg.started_at:%Y/%m/%d}/{leg.call_sid}-{leg.stream_sid}.wav"
        entry["audio"] = default_storage.save(name, ContentFile(leg.tape.wav()))
    for attempt in range(2):
        try:
            with transaction.atomic():
                record = CallRecord.objects.select_for_update().filter(call_sid=leg.call_sid)
                found = record.first()
                if found is None:
                    found = CallRecord(call_sid=leg.call_sid)
                _apply(found, leg, entry)
                found.save()
                return found
        except IntegrityError:  # another process created the row first: add to it
            if attempt:
                raise
    raise AssertionError("unreachable")


def _apply(record: CallRecord, leg: FinishedLeg, entry: dict[str, Any]) -> None:
    legs = [old for old in record.legs if old.get("stream_sid") != leg.stream_sid]
    legs.append(entry)
    legs.sort(key=lambda old: str(old["started_at"]))
    last = legs[-1]
    record.legs = legs
    record.tenant = (leg.tenant or record.tenant or "")[:64]
    record.caller = (leg.caller or record.caller or "")[:40]
    record.called = (leg.called or record.called or "")[:40]
    record.started_at = datetime.fromisoformat(legs[0]["started_at"])
    record.ended_at = datetime.fromisoformat(last["ended_at"])
    record.duration_ms = int((record.ended_at - record.started_at).total_seconds() * 1000)
    record.ended = last["how"]
    record.transfer_to = leg.transfer_to if last is entry else record.transfer_to
    record.figures = _summed([old["figures"] for old in legs])
    record.turns = _count(record.figures, "turns")
    record.barge_ins = _count(record.figures, "barge_ins")
    if leg.transcript and (last is entry or not record.transcript):
        record.transcript = leg.transcript  # the latest leg's holds the ones before it


def _summed(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """The legs' figures as one: counts added, quantiles the worst leg's, text the last's."""
    total: dict[str, Any] = {}
    for leg in figures:
        for name, value in leg.items():
            old = total.get(name)
            if isinstance(value, int) and isinstance(old, int):
                total[name] = max(old, value) if name.endswith(QUANTILE_SUFFIXES) else old + value
            elif not (isinstance(old, int) and not isinstance(value, int)):
                total[name] = value
    return total


def _count(figures: dict[str, Any], name: str) -> int:
    value = figures.get(name, 0)
    return value if isinstance(value, int) else 0
