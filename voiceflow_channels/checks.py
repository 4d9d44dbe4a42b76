"""Django system checks: a bad setting is reported at start, naming the value and the fix."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.checks import Error, Tags, Warning, register

from . import conf
from .chime import SoundFileError, load_wav

_PLAYBACK_SETTINGS = (
    "VOICEFLOW_MARK_EVERY_MS",
    "VOICEFLOW_PLAYBACK_LEAD_MS",
    "VOICEFLOW_MAX_QUEUED_AUDIO_MS",
)

# Integer settings by the end of their name, and what they count.
_UNITS = (
    ("_MS", "milliseconds"),
    ("_SECONDS", "seconds"),
    ("_S", "seconds"),
    ("_BYTES", "bytes"),
    ("_CHARS", "characters"),
    ("_STREAMS", "streams"),
    ("_PARAMETERS", "parameters"),
)


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list:
    """Every voiceflow setting has a usable type and range."""
    return [
        *_flag_messages(),
        *_int_messages(),
        *_playback_messages(),
        *_sound_messages(),
        *_signature_messages(),
    ]


@register(Tags.security, deploy=True)
def check_deploy(app_configs: Any = None, **kwargs: Any) -> list:
    """A public deployment verifies that streams really come from Twilio."""
    if conf.voz_feature_voice_flow_a() and not conf.twilio_auth_token():
        return [
            Warning(
                "TWILIO_AUTH_TOKEN is not set: /twilio/stream accepts websocket upgrades that "
                "Twilio did not sign, so anyone who finds the URL can open a stream.",
                hint="Set TWILIO_AUTH_TOKEN (the account's auth token) and VOICEFLOW_PUBLIC_URL "
                "(e.g. wss://voice.example.com) in the environment.",
                id="voiceflow_channels.W002",
            )
        ]
    return []


def _flag_messages() -> list:
    messages = []
    for name in ("VOZ_FEATURE_VOICE_FLOW_A", "VOZLIA_DEBUG"):
        value = conf.raw(name, False)
        if isinstance(value, bool):
            continue
        text = str(value).strip().lower()
        if text not in conf.TRUTHY and text not in conf.FALSY:
            messages.append(
                Warning(
                    f"{name}={value!r} is not a recognised switch value; it is treated as OFF.",
                    hint=f"Set {name} to 1/true/yes/on to turn it on, or 0/false/no/off.",
                    id="voiceflow_channels.W001",
                )
            )
    return messages


def _int_messages() -> list:
    messages = []
    for name, default in conf.INT_SETTINGS.items():
        value = conf.raw(name, default)
        number = conf.as_int(value)
        minimum = 0 if name in ("VOICE_WAIT_SOUND_TRIGGER_MS", "VOICEFLOW_DRAIN_SECONDS") else 1
        if number is None or number < minimum:
            messages.append(
                Error(
                    f"{name}={value!r} is not a whole number >= {minimum}.",
                    hint=f"Set {name} to a whole number of {_unit(name)} >= {minimum}, "
                    f"or unset it for the default ({default}).",
                    id="voiceflow_channels.E001",
                )
            )
    return messages


def _unit(name: str) -> str:
    """What an integer setting counts, from its name: VOICEFLOW_MAX_STREAMS counts streams."""
    for suffix, unit in _UNITS:
        if name.endswith(suffix):
            return unit
    raise ValueError(f"{name} names no unit: add its suffix to checks._UNITS")


def _playback_messages() -> list:
    values = {n: conf.as_int(conf.raw(n, conf.INT_SETTINGS[n])) for n in _PLAYBACK_SETTINGS}
    if None in values.values():
        return []  # E001 already names the bad one
    every = values["VOICEFLOW_MARK_EVERY_MS"]
    lead = values["VOICEFLOW_PLAYBACK_LEAD_MS"]
    queued = values["VOICEFLOW_MAX_QUEUED_AUDIO_MS"]
    if every % 20 == 0 and every <= lead <= queued:
        return []
    return [
        Error(
            f"VOICEFLOW_MARK_EVERY_MS={every}, VOICEFLOW_PLAYBACK_LEAD_MS={lead} and "
            f"VOICEFLOW_MAX_QUEUED_AUDIO_MS={queued} do not fit together.",
            hint="Audio goes out in whole 20 ms frames, a mark after each VOICEFLOW_MARK_EVERY_MS "
            "of it: make that a multiple of 20, no more than VOICEFLOW_PLAYBACK_LEAD_MS, which "
            "is no more than VOICEFLOW_MAX_QUEUED_AUDIO_MS (defaults 100, 300, 60000).",
            id="voiceflow_channels.E004",
        )
    ]


def _sound_messages() -> list:
    path = conf.voice_wait_sound_file()
    if not path:
        return []
    try:
        load_wav(path)
    except SoundFileError as exc:
        return [
            Error(
                f"VOICE_WAIT_SOUND_FILE={path!r} cannot be played: {exc}",
                hint="Convert it, e.g. `sox in.wav -r 8000 -c 1 -e mu-law out.wav`, or unset "
                "VOICE_WAIT_SOUND_FILE for the built-in chime.",
                id="voiceflow_channels.E005",
            )
        ]
    return []


def _signature_messages() -> list:
    url = conf.public_url()
    messages = []
    if url and not _is_base_url(url):
        messages.append(
            Error(
                f"VOICEFLOW_PUBLIC_URL={url!r} is not a ws:// or wss:// base URL.",
                hint="Set it to the scheme and host Twilio connects to, as in your TwiML, "
                "without the path, e.g. wss://voice.example.com.",
                id="voiceflow_channels.E002",
            )
        )
    if conf.twilio_auth_token() and not url:
        messages.append(
            Error(
                "TWILIO_AUTH_TOKEN is set but VOICEFLOW_PUBLIC_URL is not: the signed URL "
                "cannot be rebuilt (the Host header is not trusted behind a proxy).",
                hint="Set VOICEFLOW_PUBLIC_URL to the base URL in your TwiML's <Stream url>, "
                "e.g. wss://voice.example.com.",
                id="voiceflow_channels.E003",
            )
        )
    return messages


def _is_base_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        return False
    return (
        parts.scheme in ("wss", "ws")
        and bool(parts.hostname)
        and not (parts.query or parts.fragment)
    )
