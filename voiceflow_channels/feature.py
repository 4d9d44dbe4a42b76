"""The FEATURE contract for Voice Flow A: self-tests, security checks and the load budget.

Deterministic: no network, no DB. The route checks drive the real router in process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.testing import WebsocketCommunicator

from . import conf
from .call_state import CallState
from .destinations import check_destination
from .playback import Mark, Playback, Step
from .routing import build_router, stream_path
from .signature import compute_signature
from .twilio_events import is_twilio_stop, parse_twilio_media, parse_twilio_start

Result = dict[str, Any]

SAMPLE_START: dict[str, Any] = {
    "event": "start",
    "sequenceNumber": "1",
    "streamSid": "MZ00000000000000000000000000000001",
    "start": {
        "accountSid": "AC00000000000000000000000000000001",
        "streamSid": "MZ00000000000000000000000000000001",
        "callSid": "CA00000000000000000000000000000001",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"tenant_id": "  acme  ", "from": "+15551230000", "x": "y"},
    },
}
SAMPLE_MEDIA: dict[str, Any] = {
    "event": "media",
    "sequenceNumber": "2",
    "streamSid": "MZ00000000000000000000000000000001",
    "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "AAEC"},
}
MALFORMED: list[Any] = [
    None,
    [],
    "media",
    7,
    {},
    {"event": 1},
    {"event": "media"},
    {"event": "media", "media": {"payload": "!!!"}},
    {"event": "media", "media": {"payload": ["AAEC"]}},
    {"event": "start", "start": "nope"},
]


def _parsers() -> list[str]:
    failures = []
    start = parse_twilio_start(SAMPLE_START)
    if not start or start["callSid"] != "CA00000000000000000000000000000001":
        failures.append("sample start not parsed")
    if parse_twilio_media(SAMPLE_MEDIA) != b"\x00\x01\x02":
        failures.append("sample media not decoded")
    if not is_twilio_stop({"event": "stop"}) or is_twilio_stop(SAMPLE_MEDIA):
        failures.append("stop not recognised")
    for bad in MALFORMED:
        if parse_twilio_media(bad) is not None or parse_twilio_start(bad) is not None:
            failures.append(f"malformed event accepted: {bad!r}")
    call = CallState()
    for d in (SAMPLE_START, SAMPLE_MEDIA):
        call.handle(d)
    if (call.frames, call.bytes, call.gaps) != (1, 3, 0):
        failures.append(f"call state counted {call.counters()}")
    return failures


def _playback() -> list[str]:
    """One utterance played out by its mark echoes, one cleared: the books balance, and the
    marks Twilio echoes after the clear are not counted as played."""
    failures = []
    playback = Playback()
    pending = _marks(playback.play("speech", b"\x10" * 8000))
    ended = []
    while pending:
        step = playback.on_mark(pending.pop(0))
        pending += _marks(step)
        ended += step.ended
    if [(u.played_ms, u.cleared_ms) for u in ended] != [(1000, 0)]:
        failures.append(f"a played utterance closed as {ended}")
    marks = [
        m.name for m in playback.play("speech", b"\x10" * 8000).outbound if isinstance(m, Mark)
    ]
    [cut] = playback.clear().ended
    for name in marks:
        playback.on_mark(name)
    if (cut.played_ms, cut.cleared_ms, playback.played_ms) != (0, 1000, 1000):
        failures.append("marks echoed after a clear were counted as played")
    return failures


def _marks(step: Step) -> list[str]:
    return [m.name for m in step.outbound if isinstance(m, Mark)]


async def _route_accepts(enabled: bool) -> bool:
    headers: list[tuple[bytes, bytes]] = []
    token = conf.twilio_auth_token()
    if token:
        url = f"{conf.public_url()}{stream_path()}"
        headers.append((b"x-twilio-signature", compute_signature(token, url).encode()))
    communicator = WebsocketCommunicator(build_router(enabled), stream_path(), headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return bool(connected)


def selftests() -> Result:
    """The parsers on sample and malformed events; playback's books; the route absent with the
    flag OFF and present with it ON."""
    failures = _parsers() + _playback()
    if asyncio.run(_route_accepts(False)):
        failures.append(f"{stream_path()} accepted a connect with the flag OFF")
    if not asyncio.run(_route_accepts(True)):
        failures.append(f"{stream_path()} refused a connect with the flag ON")
    if failures:
        return {"ok": False, "message": "; ".join(failures)}
    return {
        "ok": True,
        "message": f"parsers ok on {len(MALFORMED)} malformed events; playback books balance; "
        f"{stream_path()} absent with the flag OFF, present with it ON",
    }


def security_checks() -> Result:
    """The flag is OFF unless truthy; tenant_id comes only from allowlisted keys, stripped."""
    failures = []
    for value in (None, "", "0", "false", "off", "no", "enabled", "2"):
        if conf.truthy(value):
            failures.append(f"flag value {value!r} reads as ON")
    for value in ("1", "true", "YES", " on "):
        if not conf.truthy(value):
            failures.append(f"flag value {value!r} reads as OFF")
    hostile = {
        **SAMPLE_START,
        "start": {
            **SAMPLE_START["start"],
            "customParameters": {"Tenant": "evil", "tenant_id_x": "evil", "from": "+1 555; DROP"},
        },
    }
    parsed = parse_twilio_start(hostile)
    if parsed is None or parsed["tenant_id"] is not None or parsed["from_number"] is not None:
        failures.append("tenant_id/from_number taken from a key off the allowlist or unclean")
    parsed = parse_twilio_start(SAMPLE_START)
    if parsed is None or parsed["tenant_id"] != "acme":
        failures.append("allowlisted tenant_id not stripped")
    failures += _transfer_failures()
    if failures:
        return {"ok": False, "message": "; ".join(failures)}
    signing = (
        "on"
        if conf.twilio_auth_token()
        else "OFF (TWILIO_AUTH_TOKEN unset: fine locally, not in production)"
    )
    return {
        "ok": True,
        "message": "flag defaults OFF; tenant_id only from allowlisted keys, "
        f"stripped; transfers only to allowlisted destinations; signature check {signing}",
    }


def _transfer_failures() -> list[str]:
    """A premium number, or any destination off the allowlist, is refused; one on it passes."""
    failures = []
    cases = (
        ("+19005550100", ("+15551230000",), False),
        ("+15551230000", (), False),
        ("+15551230000", ("+15551230000",), True),
    )
    for to, allowlist, allowed in cases:
        try:
            passed = check_destination(to, allowlist) == to
        except ValueError:
            passed = False
        if passed != allowed:
            said = "refused" if allowed else "allowed"
            failures.append(f"a transfer to {to} was {said} by the allowlist {allowlist}")
    return failures


def load_profile() -> Result:
    """The declared latency budget for parsing one websocket frame: a budget, not a measurement
    (the benchmark in benchmarks/ measures)."""
    return {"hint": "ws-parse", "p50_ms": 10, "p95_ms": 50}


FEATURE: dict[str, Any] = {
    "name": "voice_flow_a",
    "description": "Twilio Media Streams at /twilio/stream: parse, per-call state, waits, "
    "outbound audio (mark-clocked, cleared cleanly) and the thinking chime.",
    "enabled_env": "VOZ_FEATURE_VOICE_FLOW_A",
    "selftests": selftests,
    "security_checks": security_checks,
    "load_profile": load_profile,
}
