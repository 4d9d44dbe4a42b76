"""The Twilio Media Streams wire format: inbound events decoded, classified and validated;
outbound messages (`media`, `mark`, `clear`) and the typed start handed to hooks, as pydantic
models.

Framework-free (standard library, orjson and pydantic). Every inbound parser returns a clean value
or None/False for anything malformed; none raises, whatever the input. The inbound media path is
hand-written, not a pydantic model: `python -m benchmarks.parsers` measures both.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict

# What an inbound event is taken as: one Twilio sends, or "unknown" for any other name.
EventName = Literal["connected", "start", "media", "stop", "mark", "dtmf", "unknown"]
_KNOWN_EVENTS: dict[str, EventName] = {
    "connected": "connected",
    "start": "start",
    "media": "media",
    "stop": "stop",
    "mark": "mark",
    "dtmf": "dtmf",
}

# customParameters keys that may name the tenant / the caller's number, in order of preference.
# These are the ONLY sources of tenant_id and from_number: nothing else in the start is trusted.
TENANT_KEYS = ("tenant_id", "tenantId", "tenant")
FROM_KEYS = ("from_number", "from", "From", "caller")
# The number the caller dialled (Twilio's `To`), which the voice webhook passes on.
TO_KEYS = ("to_number", "to", "To", "called")
ALLOWED_PARAMETERS = frozenset(TENANT_KEYS + FROM_KEYS + TO_KEYS)

_TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PHONE_RE = re.compile(r"\+?[0-9]{3,20}|client:[A-Za-z0-9_.-]{1,64}|anonymous")
_SID_RE = re.compile(r"[A-Za-z0-9]{2,64}")
_DTMF_RE = re.compile(r"[0-9*#A-D]")


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on everything a caller controls; defaults fit Twilio's real traffic with margin."""

    max_message_bytes: int = 16_384
    max_payload_bytes: int = 8_000
    max_custom_parameters: int = 16
    max_parameter_key_chars: int = 64
    max_parameter_value_chars: int = 256
    max_tenant_chars: int = 64

    @property
    def max_payload_b64_chars(self) -> int:
        return 4 * -(-self.max_payload_bytes // 3)


DEFAULT_LIMITS = Limits()


def decode_message(text: Any) -> dict[str, Any] | None:
    """Decode one websocket text frame into an event dict; None if it is not JSON or not an
    object with a string `event`."""
    try:
        d = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return None
    if type(d) is not dict or type(d.get("event")) is not str:
        return None
    return d


def event_name(d: Any) -> EventName | None:
    """The event's name if it is one Twilio sends, "unknown" for any other string, else None."""
    if type(d) is not dict:
        return None
    name = d.get("event")
    if type(name) is not str:
        return None
    return _KNOWN_EVENTS.get(name, "unknown")


def sequence_number(d: Any) -> int | None:
    """Twilio's per-stream `sequenceNumber` (a string of digits) as an int, else None."""
    return _digits(d.get("sequenceNumber")) if type(d) is dict else None


def parse_twilio_media(d: Any, limits: Limits = DEFAULT_LIMITS) -> bytes | None:
    """The decoded audio of a `media` event; None for anything malformed or over the size bound."""
    if type(d) is not dict or d.get("event") != "media":
        return None
    return media_audio(d.get("media"), limits.max_payload_b64_chars)


def media_audio(media: Any, max_b64_chars: int) -> bytes | None:
    """The decoded audio of a `media` event's `media` object; None for anything malformed or
    with a payload over `max_b64_chars` (the hot path's share of `parse_twilio_media`)."""
    if type(media) is not dict:
        return None
    payload = media.get("payload")
    if type(payload) is not str or len(payload) > max_b64_chars:
        return None
    try:
        audio = binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return audio if audio else None


def parse_twilio_start(d: Any, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any] | None:
    """The fields of a `start` event later layers need; None if it is not a usable start.

    `tenant_id`, `from_number` and `to_number` come only from the allowlisted customParameters
    keys, stripped;
    a value that is not a short printable token is None, never passed on.
    """
    if type(d) is not dict or d.get("event") != "start":
        return None
    start = d.get("start")
    if type(start) is not dict:
        return None
    stream_sid = _sid(start.get("streamSid")) or _sid(d.get("streamSid"))
    call_sid = _sid(start.get("callSid"))
    if stream_sid is None or call_sid is None:
        return None
    params, dropped = custom_parameters(start.get("customParameters"), limits)
    tenant = _first(params, TENANT_KEYS)
    caller = _first(params, FROM_KEYS)
    return {
        "streamSid": stream_sid,
        "callSid": call_sid,
        "accountSid": _sid(start.get("accountSid")),
        "tracks": _tracks(start.get("tracks")),
        "mediaFormat": _media_format(start.get("mediaFormat")),
        "customParameters": params,
        "droppedParameters": dropped,
        "tenant_id": clean_tenant_id(tenant, limits.max_tenant_chars),
        "from_number": clean_phone(caller),
        "to_number": clean_phone(_first(params, TO_KEYS)),
    }


def clean_tenant_id(value: Any, max_chars: int = DEFAULT_LIMITS.max_tenant_chars) -> str | None:
    """A tenant id as `start` accepts one (stripped; letters, digits, `_.-`, up to `max_chars`),
    else None: the voice webhook sends only what the stream's start will keep."""
    return _match(value.strip(), _TENANT_RE, max_chars) if type(value) is str else None


def clean_phone(value: Any) -> str | None:
    """A caller's number as `start` accepts one (stripped; `+` and digits, `client:name` or
    `anonymous`), else None."""
    return _match(value.strip(), _PHONE_RE, 64) if type(value) is str else None


def custom_parameters(raw: Any, limits: Limits = DEFAULT_LIMITS) -> tuple[dict[str, str], int]:
    """The allowlisted customParameters, stripped, and how many entries were dropped.

    Dropped: every entry when there are more than `max_custom_parameters`; otherwise keys off the
    allowlist or over the key length bound, and values that are not printable strings within the
    value length bound.
    """
    if type(raw) is not dict:
        return {}, 0
    if len(raw) > limits.max_custom_parameters:
        return {}, len(raw)
    kept: dict[str, str] = {}
    for key, value in raw.items():
        if len(key) > limits.max_parameter_key_chars or key not in ALLOWED_PARAMETERS:
            continue
        if type(value) is not str:
            continue
        value = value.strip()
        if value and len(value) <= limits.max_parameter_value_chars and value.isprintable():
            kept[key] = value
    return kept, len(raw) - len(kept)


def is_twilio_stop(d: Any) -> bool:
    """True for a `stop` event."""
    return type(d) is dict and d.get("event") == "stop"


def parse_twilio_mark(d: Any) -> str | None:
    """The label of a `mark` event (echoed back by Twilio when queued audio has played)."""
    if type(d) is not dict or d.get("event") != "mark":
        return None
    mark = d.get("mark")
    name = mark.get("name") if type(mark) is dict else None
    return name if type(name) is str and 0 < len(name) <= 256 else None


def parse_twilio_dtmf(d: Any) -> str | None:
    """The key pressed in a `dtmf` event: one of 0-9, *, #, A-D."""
    if type(d) is not dict or d.get("event") != "dtmf":
        return None
    dtmf = d.get("dtmf")
    digit = dtmf.get("digit") if type(dtmf) is dict else None
    return digit if type(digit) is str and _DTMF_RE.fullmatch(digit) else None


def mask_phone(number: str | None) -> str:
    """A phone number fit for logs: only its last four characters are kept."""
    if not number:
        return "-"
    return "*" * max(len(number) - 4, 0) + number[-4:]


def _digits(value: Any) -> int | None:
    # isascii: str.isdigit alone accepts other scripts' digits.
    if type(value) is str and 0 < len(value) <= 20 and value.isascii() and value.isdigit():
        return int(value)
    return None


def _sid(value: Any) -> str | None:
    return value if type(value) is str and _SID_RE.fullmatch(value) else None


def _first(params: dict[str, str], keys: tuple[str, ...]) -> str | None:
    return next((params[k] for k in keys if k in params), None)


def _match(value: str | None, pattern: re.Pattern[str], max_chars: int) -> str | None:
    if value is None or len(value) > max_chars or not pattern.fullmatch(value):
        return None
    return value


def _tracks(value: Any) -> list[str]:
    if type(value) is not list:
        return []
    return [t for t in value[:4] if t in ("inbound", "outbound")]


def _media_format(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        return {}
    encoding = value.get("encoding")
    rate = value.get("sampleRate")
    channels = value.get("channels")
    return {
        "encoding": encoding if type(encoding) is str and len(encoding) <= 32 else None,
        "sampleRate": rate if type(rate) is int and 0 < rate <= 192_000 else None,
        "channels": channels if type(channels) is int and 0 < channels <= 8 else None,
    }


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StreamStart(_Message):
    """A stream's `start`, as `parse_twilio_start` cleaned it: what `on_start(start)` gets."""

    streamSid: str
    callSid: str
    accountSid: str | None
    tracks: list[str]
    mediaFormat: dict[str, Any]
    customParameters: dict[str, str]
    droppedParameters: int
    tenant_id: str | None
    from_number: str | None
    to_number: str | None


class OutboundPayload(_Message):
    payload: str


class OutboundMedia(_Message):
    """Audio for Twilio to play: base64 of 8 kHz mu-law, whole 20 ms frames."""

    event: Literal["media"] = "media"
    streamSid: str
    media: OutboundPayload


class OutboundMarkName(_Message):
    name: str


class OutboundMark(_Message):
    """Echoed back by Twilio once the audio sent before it has played (or been cleared)."""

    event: Literal["mark"] = "mark"
    streamSid: str
    mark: OutboundMarkName


class OutboundClear(_Message):
    """Twilio drops the audio it has buffered and echoes the pending marks at once."""

    event: Literal["clear"] = "clear"
    streamSid: str


def media_message(stream_sid: str, mulaw: bytes) -> str:
    payload = OutboundPayload(payload=base64.b64encode(mulaw).decode("ascii"))
    return OutboundMedia(streamSid=stream_sid, media=payload).model_dump_json()


def mark_message(stream_sid: str, name: str) -> str:
    return OutboundMark(streamSid=stream_sid, mark=OutboundMarkName(name=name)).model_dump_json()


def clear_message(stream_sid: str) -> str:
    return OutboundClear(streamSid=stream_sid).model_dump_json()
