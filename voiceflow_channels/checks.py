"""Django system checks: a bad setting is reported at start, naming the value and the fix."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from channels import DEFAULT_CHANNEL_LAYER
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from . import conf
from .chime import SoundFileError, load_wav
from .destinations import entry_problem, is_e164

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
    ("_RECONNECTS", "reconnects"),
    ("_RETRIES", "retries"),
    ("_ITEMS", "items"),
    ("_THREADS", "threads"),
    ("_REPROMPTS", "check-ins"),
    ("_DAYS", "days"),
)
# Integer settings where 0 is meaningful: at once, no wait, never.
_ZERO_ALLOWED = (
    "VOICE_WAIT_SOUND_TRIGGER_MS",
    "VOICEFLOW_DRAIN_SECONDS",
    "VOICEFLOW_RECONNECTS",
    "VOICEFLOW_MODEL_RETRIES",
    "VOICEFLOW_IDLE_REPROMPT_MS",
    "VOICEFLOW_IDLE_REPROMPTS",
    "VOICEFLOW_MAX_CALL_SECONDS",
    "VOICEFLOW_MIN_BARGE_IN_MS",
)
# One segment of a URL path that needs no escaping (RFC 3986's unreserved characters).
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
_IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"
_LOCMEM_CACHE = "django.core.cache.backends.locmem.LocMemCache"
_DUMMY_CACHE = "django.core.cache.backends.dummy.DummyCache"


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every voiceflow setting has a usable type and range."""
    return [
        *_flag_messages(),
        *_int_messages(),
        *_playback_messages(),
        *_sound_messages(),
        *_signature_messages(),
        *_tenant_resolver_messages(),
        *_allowlist_messages(),
        *_caller_id_messages(),
        *_cache_messages(),
        *_stream_prefix_messages(),
        *_record_messages(),
    ]


@register(Tags.security, deploy=True)
def check_deploy(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A public deployment verifies that streams really come from Twilio."""
    if conf.voz_feature_voice_flow_a() and not conf.twilio_auth_token():
        return [
            Warning(
                f"TWILIO_AUTH_TOKEN is not set: /{conf.stream_prefix()}twilio/stream accepts "
                "websocket upgrades that Twilio did not sign, so anyone who finds the URL can "
                "open a stream.",
                hint="Set TWILIO_AUTH_TOKEN (the account's auth token) and VOICEFLOW_PUBLIC_URL "
                "(e.g. wss://voice.example.com) in the environment.",
                id="voiceflow_channels.W002",
            )
        ]
    return []


def _flag_messages() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name, default in conf.SWITCHES.items():
        value = conf.raw(name, default)
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


def _int_messages() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name, default in conf.INT_SETTINGS.items():
        value = conf.raw(name, default)
        number = conf.as_int(value)
        minimum = 0 if name in _ZERO_ALLOWED else 1
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


def _playback_messages() -> list[CheckMessage]:
    values = {n: conf.as_int(conf.raw(n, conf.INT_SETTINGS[n])) for n in _PLAYBACK_SETTINGS}
    every = values["VOICEFLOW_MARK_EVERY_MS"]
    lead = values["VOICEFLOW_PLAYBACK_LEAD_MS"]
    queued = values["VOICEFLOW_MAX_QUEUED_AUDIO_MS"]
    if every is None or lead is None or queued is None:
        return []  # E001 already names the bad one
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


def _sound_messages() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name, path, builtin in (
        ("VOICE_WAIT_SOUND_FILE", conf.voice_wait_sound_file(), "the built-in chime"),
        ("VOICEFLOW_FALLBACK_SOUND_FILE", conf.fallback_sound_file(), "the built-in fallback"),
    ):
        if not path:
            continue
        try:
            load_wav(path, needed_by=name)
        except SoundFileError as exc:
            messages.append(
                Error(
                    f"{name}={path!r} cannot be played: {exc}",
                    hint="Convert it, e.g. `sox in.wav -r 8000 -c 1 -e mu-law out.wav`, or "
                    f"unset {name} for {builtin}.",
                    id="voiceflow_channels.E005",
                )
            )
    return messages


def _signature_messages() -> list[CheckMessage]:
    url = conf.public_url()
    messages: list[CheckMessage] = []
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
    elif conf.voz_feature_voice_flow_a() and not url:
        messages.append(
            Warning(
                "VOICEFLOW_PUBLIC_URL is not set: POST /twilio/voice answers 503, since the "
                "TwiML it answers names the public URLs of the stream and of its action.",
                hint="Set VOICEFLOW_PUBLIC_URL to the public base URL Twilio reaches, e.g. "
                "wss://voice.example.com; or, if you answer calls with TwiML of your own, add "
                "voiceflow_channels.W004 to SILENCED_SYSTEM_CHECKS.",
                id="voiceflow_channels.W004",
            )
        )
    return messages


def _is_base_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        return False
    # The signed URLs are this plus a path: a path of its own, or spaces, would be signed too.
    return (
        parts.scheme in ("wss", "ws")
        and bool(parts.hostname)
        and parts.path in ("", "/")
        and not (parts.query or parts.fragment)
        and url == url.strip()
    )


def _tenant_resolver_messages() -> list[CheckMessage]:
    path = conf.raw("VOICEFLOW_TENANT_RESOLVER", "")
    try:
        resolver = conf.tenant_resolver()
    except Exception as exc:  # ImportError, or whatever importing the module raised
        problem = f"cannot be imported ({type(exc).__name__}: {exc})"
    else:
        if resolver is None or callable(resolver):
            return []
        problem = f"names a {type(resolver).__name__}, not a callable"
    return [
        Error(
            f"VOICEFLOW_TENANT_RESOLVER={path!r} {problem}.",
            hint="Set it to the dotted path of a function that takes the voice webhook's request "
            "and returns a tenant id or None, e.g. myapp.tenants.by_dialled_number; or unset it.",
            id="voiceflow_channels.E006",
        )
    ]


def _allowlist_messages() -> list[CheckMessage]:
    value = conf.raw("VOICEFLOW_TRANSFER_ALLOWLIST", ())
    entries = value.split(",") if isinstance(value, str) else value
    if not isinstance(entries, list | tuple):
        kind = type(value).__name__
        return [_allowlist_error(f"={value!r} is a {kind}, not a list or comma-separated string")]
    stripped = [e.strip() if isinstance(e, str) else e for e in entries]
    return [
        _allowlist_error(f" entry {entry!r} {problem}")
        for entry in stripped
        if entry != "" and (problem := entry_problem(entry))
    ]


def _allowlist_error(what: str) -> Error:
    return Error(
        f"VOICEFLOW_TRANSFER_ALLOWLIST{what}.",
        hint="List the destinations calls may be transferred to, exactly (+15551234567, "
        "sip:desk@pbx.example.com) or by a wildcard (+4420*, sip:*@pbx.example.com); in the "
        "env, comma-separated.",
        id="voiceflow_channels.E007",
    )


def _caller_id_messages() -> list[CheckMessage]:
    caller_id = conf.transfer_caller_id()
    if caller_id is None or is_e164(caller_id):
        return []
    return [
        Error(
            f"VOICEFLOW_TRANSFER_CALLER_ID={caller_id!r} is not an E.164 number.",
            hint="Set it to one of your Twilio numbers or a verified caller ID, e.g. "
            "+15551234567; or unset it to show the caller's own number.",
            id="voiceflow_channels.E009",
        )
    ]


def _cache_messages() -> list[CheckMessage]:
    caches = settings.CACHES
    aliases = {"VOICEFLOW_CALL_CONTROL_CACHE": conf.call_control_cache()}
    if conf.conversation_cache() != aliases["VOICEFLOW_CALL_CONTROL_CACHE"]:
        aliases["VOICEFLOW_CONVERSATION_CACHE"] = conf.conversation_cache()
    missing: list[CheckMessage] = [
        Error(
            f"{name}={alias!r} is not in CACHES ({', '.join(map(repr, caches)) or 'none'}).",
            hint="Set it to the alias of a cache in CACHES, shared by every server process: "
            "Django's RedisCache with several (unset, the conversation cache is the "
            "call-control cache, and that is 'default').",
            id="voiceflow_channels.E008",
        )
        for name, alias in aliases.items()
        if alias not in caches
    ]
    if missing:
        return missing
    alias = aliases["VOICEFLOW_CALL_CONTROL_CACHE"]
    backend = caches[alias].get("BACKEND", "")
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    layer = layers.get(DEFAULT_CHANNEL_LAYER, {}).get("BACKEND", _IN_MEMORY_LAYER)
    if backend == _DUMMY_CACHE:
        problem = "stores nothing: every hang-up and transfer is lost"
    elif backend == _LOCMEM_CACHE and layer != _IN_MEMORY_LAYER:
        problem = (
            f"is per process while the channel layer ({layer}) is shared: a hang-up or transfer "
            "decided on one process is not found on the one Twilio asks next"
        )
    else:
        return []
    return [
        Warning(
            f"VOICEFLOW_CALL_CONTROL_CACHE={alias!r} ({backend}) {problem}.",
            hint="Point it at a cache every server process shares, e.g. "
            "django.core.cache.backends.redis.RedisCache on the layer's Redis.",
            id="voiceflow_channels.W003",
        )
    ]


def _stream_prefix_messages() -> list[CheckMessage]:
    value = conf.raw("VOICEFLOW_STREAM_PREFIX", "")
    if isinstance(value, str):
        segments = conf.stream_prefix().rstrip("/").split("/") if conf.stream_prefix() else []
        if all(_PATH_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
            return []
    return [
        Error(
            f"VOICEFLOW_STREAM_PREFIX={value!r} is not a URL path prefix.",
            hint="Set it to the path the stream is under, e.g. voice or calls/v1 (letters, "
            "digits and ._~- between slashes): the stream is then served at "
            "/voice/twilio/stream, and the voice webhook's TwiML names that; or unset it for "
            "/twilio/stream.",
            id="voiceflow_channels.E010",
        )
    ]


def _record_messages() -> list[CheckMessage]:
    if not conf.call_records():
        kept = [name for name in conf.RECORD_KEEPS if conf.switch(name)]
        return [
            Warning(
                f"{name} is on but VOICEFLOW_CALL_RECORDS is off: no call is recorded, so "
                "nothing is kept.",
                hint=f"Turn VOICEFLOW_CALL_RECORDS on to keep call records, or turn {name} off.",
                id="voiceflow_channels.W005",
            )
            for name in kept
        ]
    engine = settings.DATABASES.get("default", {}).get("ENGINE", "django.db.backends.dummy")
    if engine != "django.db.backends.dummy":
        return []
    return [
        Warning(
            "VOICEFLOW_CALL_RECORDS is on but DATABASES has no 'default' database: every "
            "call's record fails to be written (logged and counted).",
            hint="Configure DATABASES and run `manage.py migrate`, or set "
            "VOICEFLOW_CALL_RECORDS=0.",
            id="voiceflow_channels.W006",
        )
    ]
