"""The app's settings, each with its default: a Django setting wins, else the env var of the
same name, else the default. Read on every access, so `override_settings` just works."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings

from .twilio_events import DEFAULT_LIMITS, Limits
from .wait_state import DEFAULT_TRIGGER_MS

TRUTHY = frozenset({"1", "true", "yes", "on"})
FALSY = frozenset({"", "0", "false", "no", "off"})

# Setting name -> Limits field, for the bounds on everything a caller controls.
LIMIT_SETTINGS: dict[str, str] = {
    "VOICEFLOW_MAX_MESSAGE_BYTES": "max_message_chars",
    "VOICEFLOW_MAX_PAYLOAD_BYTES": "max_payload_bytes",
    "VOICEFLOW_MAX_CUSTOM_PARAMETERS": "max_custom_parameters",
    "VOICEFLOW_MAX_PARAMETER_KEY_CHARS": "max_parameter_key_chars",
    "VOICEFLOW_MAX_PARAMETER_VALUE_CHARS": "max_parameter_value_chars",
    "VOICEFLOW_MAX_TENANT_CHARS": "max_tenant_chars",
}

INT_SETTINGS: dict[str, int] = {
    "VOICE_WAIT_SOUND_TRIGGER_MS": DEFAULT_TRIGGER_MS,
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


def flag_enabled() -> bool:
    return truthy(raw("VOZ_FEATURE_VOICE_FLOW_A", False))


def debug() -> bool:
    return truthy(raw("VOZLIA_DEBUG", False))


def wait_trigger_ms() -> int:
    return _int("VOICE_WAIT_SOUND_TRIGGER_MS")


def auth_token() -> str:
    return str(raw("TWILIO_AUTH_TOKEN", "") or "")


def public_url() -> str:
    return str(raw("VOICEFLOW_PUBLIC_URL", "") or "").rstrip("/")


def limits() -> Limits:
    return Limits(**{field: _int(name) for name, field in LIMIT_SETTINGS.items()})
