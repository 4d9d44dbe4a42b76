"""The app's settings, each with its default: a Django setting wins, else the env var of the
same name, else the default. Read on every access, so `override_settings` just works.

Each accessor is its setting's name in lower case, without the `VOICEFLOW_` prefix
(`vozlia_debug()` reads VOZLIA_DEBUG); `chime_audio()` and `limits()` build from several."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from .chime import load_wav, synthesize_chime
from .playback import DEFAULT_LEAD_MS, DEFAULT_MARK_EVERY_MS, DEFAULT_MAX_QUEUED_MS
from .twilio_events import DEFAULT_LIMITS, Limits
from .wait_state import DEFAULT_REPEAT_MS, DEFAULT_TRIGGER_MS

# OpenAI's current GA speech-to-speech model (README, "Talk to a model": why this one).
DEFAULT_REALTIME_MODEL = "gpt-realtime-2.1"
TRUTHY = frozenset({"1", "true", "yes", "on"})
FALSY = frozenset({"", "0", "false", "no", "off"})

# Setting name -> Limits field, for the bounds on everything a caller controls.
LIMIT_SETTINGS: dict[str, str] = {
    "VOICEFLOW_MAX_MESSAGE_BYTES": "max_message_bytes",
    "VOICEFLOW_MAX_PAYLOAD_BYTES": "max_payload_bytes",
    "VOICEFLOW_MAX_CUSTOM_PARAMETERS": "max_custom_parameters",
    "VOICEFLOW_MAX_PARAMETER_KEY_CHARS": "max_parameter_key_chars",
    "VOICEFLOW_MAX_PARAMETER_VALUE_CHARS": "max_parameter_value_chars",
    "VOICEFLOW_MAX_TENANT_CHARS": "max_tenant_chars",
}

INT_SETTINGS: dict[str, int] = {
    "VOICE_WAIT_SOUND_TRIGGER_MS": DEFAULT_TRIGGER_MS,
    "VOICE_WAIT_SOUND_REPEAT_MS": DEFAULT_REPEAT_MS,
    "VOICEFLOW_PLAYBACK_LEAD_MS": DEFAULT_LEAD_MS,
    "VOICEFLOW_MARK_EVERY_MS": DEFAULT_MARK_EVERY_MS,
    "VOICEFLOW_MAX_QUEUED_AUDIO_MS": DEFAULT_MAX_QUEUED_MS,
    "VOICEFLOW_PART_TIMEOUT_MS": 2000,
    "VOICEFLOW_DRAIN_SECONDS": 600,
    "VOICEFLOW_START_TIMEOUT_S": 5,
    "VOICEFLOW_IDLE_TIMEOUT_S": 10,
    "VOICEFLOW_MAX_STREAMS": 1000,
    "VOICEFLOW_TOOL_TIMEOUT_S": 30,
    "VOICEFLOW_TOOL_THREADS": 16,
    "VOICEFLOW_TENANT_RESOLVER_TIMEOUT_S": 2,
    "VOICEFLOW_RECONNECTS": 2,
    "VOICEFLOW_CONVERSATION_MAX_ITEMS": 200,
    "VOICEFLOW_MODEL_RETRIES": 2,
    "VOICEFLOW_DTMF_GAP_MS": 1500,
    "VOICEFLOW_IDLE_REPROMPT_MS": 8000,
    "VOICEFLOW_IDLE_REPROMPTS": 2,
    "VOICEFLOW_MAX_CALL_SECONDS": 1800,
    "VOICEFLOW_MIN_BARGE_IN_MS": 400,
    "VOICEFLOW_RECORDS_RETENTION_DAYS": 30,
    **{name: getattr(DEFAULT_LIMITS, field) for name, field in LIMIT_SETTINGS.items()},
}


def raw(name: str, default: Any = None) -> Any:
    """The setting as configured: Django setting, else env var, else `default`."""
    return getattr(settings, name, os.environ.get(name, default))


def truthy(value: Any) -> bool:
    """1/true/yes/on (any case) and True are on; anything else is off."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUTHY


def as_int(value: Any) -> int | None:
    """An int, or a string of digits, as an int; None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _int(name: str) -> int:
    value = as_int(raw(name, INT_SETTINGS[name]))
    return INT_SETTINGS[name] if value is None else value


# What a call record keeps beyond its figures, each off by default (README, "What happened on
# that call?"): on while records are off, each is W005.
RECORD_KEEPS = (
    "VOICEFLOW_RECORD_TRANSCRIPTS",
    "VOICEFLOW_RECORD_AUDIO",
    "VOICEFLOW_RECORD_CALLER_NUMBER",
)
# Every on/off setting, with its default: read by `switch`, checked by W001.
SWITCHES: dict[str, bool] = {
    "VOZ_FEATURE_VOICE_FLOW_A": False,
    "VOZLIA_DEBUG": False,
    "VOICEFLOW_DTMF_TO_MODEL": True,
    "VOICEFLOW_CALL_RECORDS": True,
    **dict.fromkeys(RECORD_KEEPS, False),
}


def switch(name: str) -> bool:
    """An on/off setting (SWITCHES) as set, else its default."""
    return truthy(raw(name, SWITCHES[name]))


def voz_feature_voice_flow_a() -> bool:
    return switch("VOZ_FEATURE_VOICE_FLOW_A")


def dtmf_to_model() -> bool:
    return switch("VOICEFLOW_DTMF_TO_MODEL")


def dtmf_gap_ms() -> int:
    return _int("VOICEFLOW_DTMF_GAP_MS")


def idle_reprompt_ms() -> int:
    return _int("VOICEFLOW_IDLE_REPROMPT_MS")


def idle_reprompts() -> int:
    return _int("VOICEFLOW_IDLE_REPROMPTS")


def max_call_seconds() -> int:
    return _int("VOICEFLOW_MAX_CALL_SECONDS")


def vozlia_debug() -> bool:
    return switch("VOZLIA_DEBUG")


def voice_wait_sound_trigger_ms() -> int:
    return _int("VOICE_WAIT_SOUND_TRIGGER_MS")


def voice_wait_sound_repeat_ms() -> int:
    return _int("VOICE_WAIT_SOUND_REPEAT_MS")


def playback_lead_ms() -> int:
    return _int("VOICEFLOW_PLAYBACK_LEAD_MS")


def mark_every_ms() -> int:
    return _int("VOICEFLOW_MARK_EVERY_MS")


def max_queued_audio_ms() -> int:
    return _int("VOICEFLOW_MAX_QUEUED_AUDIO_MS")


def part_timeout_ms() -> int:
    return _int("VOICEFLOW_PART_TIMEOUT_MS")


def drain_seconds() -> int:
    return _int("VOICEFLOW_DRAIN_SECONDS")


def start_timeout_s() -> int:
    return _int("VOICEFLOW_START_TIMEOUT_S")


def idle_timeout_s() -> int:
    return _int("VOICEFLOW_IDLE_TIMEOUT_S")


def max_streams() -> int:
    return _int("VOICEFLOW_MAX_STREAMS")


def voice_wait_sound_file() -> str:
    return str(raw("VOICE_WAIT_SOUND_FILE", "") or "").strip()


def chime_audio() -> bytes:
    """The chime as mu-law: VOICE_WAIT_SOUND_FILE, else the built-in one. Read once per path (a
    system check has already refused a file that cannot be played)."""
    path = voice_wait_sound_file()
    return _load_sound(path) if path else synthesize_chime()


@functools.lru_cache(maxsize=4)
def _load_sound(path: str) -> bytes:
    return load_wav(path)


def twilio_auth_token() -> str:
    return str(raw("TWILIO_AUTH_TOKEN", "") or "")


def public_url() -> str:
    return str(raw("VOICEFLOW_PUBLIC_URL", "") or "").rstrip("/")


def stream_prefix() -> str:
    """VOICEFLOW_STREAM_PREFIX as the start of a path: "" or e.g. "voice/" (the slashes around
    it dropped, one put after it)."""
    prefix = str(raw("VOICEFLOW_STREAM_PREFIX", "") or "").strip().strip("/")
    return f"{prefix}/" if prefix else ""


def reconnects() -> int:
    return _int("VOICEFLOW_RECONNECTS")


def transfer_allowlist() -> tuple[str, ...]:
    """The allowed transfer destinations: a list or tuple, or a comma-separated string (as the
    env holds it); entries stripped, empty ones and non-strings dropped (a check reports them)."""
    value = raw("VOICEFLOW_TRANSFER_ALLOWLIST", ())
    entries = value.split(",") if isinstance(value, str) else value
    if not isinstance(entries, list | tuple):
        return ()
    return tuple(e.strip() for e in entries if isinstance(e, str) and e.strip())


def transfer_caller_id() -> str | None:
    """The number a transferred call shows its callee (`<Dial callerId>`); None: Twilio's
    default, the caller's own number."""
    return str(raw("VOICEFLOW_TRANSFER_CALLER_ID", "") or "").strip() or None


def tenant_resolver() -> Callable[..., Any] | None:
    """The callable VOICEFLOW_TENANT_RESOLVER names (it takes the voice webhook's request and
    returns a tenant id or None), or None when unset. ImportError when it names nothing."""
    path = str(raw("VOICEFLOW_TENANT_RESOLVER", "") or "").strip()
    return import_string(path) if path else None


def call_control_cache() -> str:
    """The alias, in CACHES, of the cache that keeps how each call is to end."""
    return str(raw("VOICEFLOW_CALL_CONTROL_CACHE", "default") or "default").strip()


def conversation_cache() -> str:
    """The alias, in CACHES, of the cache that keeps each call's conversation (default: the
    call-control cache's)."""
    alias = str(raw("VOICEFLOW_CONVERSATION_CACHE", "") or "").strip()
    return alias or call_control_cache()


def conversation_max_items() -> int:
    return _int("VOICEFLOW_CONVERSATION_MAX_ITEMS")


def model_retries() -> int:
    return _int("VOICEFLOW_MODEL_RETRIES")


def min_barge_in_ms() -> int:
    return _int("VOICEFLOW_MIN_BARGE_IN_MS")


def call_records() -> bool:
    return switch("VOICEFLOW_CALL_RECORDS")


def record_transcripts() -> bool:
    return switch("VOICEFLOW_RECORD_TRANSCRIPTS")


def record_audio() -> bool:
    return switch("VOICEFLOW_RECORD_AUDIO")


def record_caller_number() -> bool:
    return switch("VOICEFLOW_RECORD_CALLER_NUMBER")


def records_retention_days() -> int:
    return _int("VOICEFLOW_RECORDS_RETENTION_DAYS")


def limits() -> Limits:
    return Limits(**{field: _int(name) for name, field in LIMIT_SETTINGS.items()})


def realtime_model() -> str:
    return str(raw("VOICEFLOW_REALTIME_MODEL", "") or "").strip() or DEFAULT_REALTIME_MODEL


def tool_timeout_s() -> int:
    return _int("VOICEFLOW_TOOL_TIMEOUT_S")


def tool_threads() -> int:
    return _int("VOICEFLOW_TOOL_THREADS")


def tenant_resolver_timeout_s() -> int:
    return _int("VOICEFLOW_TENANT_RESOLVER_TIMEOUT_S")


def fallback_sound_file() -> str:
    return str(raw("VOICEFLOW_FALLBACK_SOUND_FILE", "") or "").strip()
