"""The messages that reach a call through the channel layer, as pydantic models.

Framework-free. They come from other processes (any code that can `group_send` to the call's
group), so each is parsed by `parse_layer_message` before it touches the call: a bad one is a
clear ValidationError (a ValueError), logged and counted by the consumer, never a crash.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

from .destinations import MAX_DESTINATION_CHARS, is_destination

MAX_REASON_CHARS = 64
MAX_LABEL_CHARS = 64
# One layer message carries at most 1 s of 8 kHz mu-law (8,000 bytes): far below what
# channels-redis and Redis carry comfortably, and 60 of them hold the default queue bound.
AUDIO_CHUNK_BYTES = 8_000
MAX_PARTS = 100_000
UTTERANCE_KEY = r"^[A-Za-z0-9_-]{1,64}$"


def clean_reason(reason: object) -> str:
    """A reason fit for logs and state: a short printable string, else "unspecified"."""
    if isinstance(reason, str):
        reason = reason.strip()
        if reason and len(reason) <= MAX_REASON_CHARS and reason.isprintable():
            return reason
    return "unspecified"


def check_label(label: object) -> str:
    """An utterance label: 1-64 printable characters. Not a str is a TypeError; any other
    string a ValueError."""
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, not {type(label).__name__}")
    if not (0 < len(label) <= MAX_LABEL_CHARS and label.isprintable()):
        raise ValueError(f"label must be 1-{MAX_LABEL_CHARS} printable characters, not {label!r}")
    return label


def check_key(key: object) -> str:
    """An utterance's key (it names the utterance in logs): 1-64 letters, digits, _ and -. Not a
    str is a TypeError; any other string a ValueError."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")
    if not re.fullmatch(UTTERANCE_KEY, key):
        raise ValueError(f"key must be 1-64 letters, digits, _ or -, not {key!r}")
    return key


def check_audio(mulaw: object) -> bytes:
    """Audio to play, as bytes: anything but bytes, bytearray or memoryview is a TypeError."""
    if not isinstance(mulaw, bytes | bytearray | memoryview):
        raise TypeError(f"mulaw must be bytes of 8 kHz mu-law, not {type(mulaw).__name__}")
    return bytes(mulaw)


class _LayerMessage(BaseModel):
    # Layers may add their own keys (channels-redis routes with "__asgi_channel__").
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class WaitStart(_LayerMessage):
    type: Literal["voiceflow.wait.start"]
    reason: Annotated[str, BeforeValidator(clean_reason)] = "unspecified"


class WaitEnd(_LayerMessage):
    type: Literal["voiceflow.wait.end"]


class AudioPlay(_LayerMessage):
    """One part of an utterance: parts of one `utterance` arrive in order, the last `final`."""

    type: Literal["voiceflow.audio.play"]
    utterance: str = Field(pattern=UTTERANCE_KEY)
    label: Annotated[str, BeforeValidator(check_label)]
    part: int = Field(ge=0, lt=MAX_PARTS)
    final: bool
    audio: bytes = Field(min_length=1, max_length=AUDIO_CHUNK_BYTES)


class AudioClear(_LayerMessage):
    type: Literal["voiceflow.audio.clear"]


def check_destination_shape(to: str) -> str:
    """A transfer's `to` as a message may carry it: an E.164 number or a `sip:` URI (the sender
    checked it against the allowlist; anything else on the layer is not ours)."""
    if not is_destination(to):
        raise ValueError("to must be an E.164 number or a sip: URI")
    return to


class CallHangup(_LayerMessage):
    """End the call once what is queued has played."""

    type: Literal["voiceflow.call.hangup"]


class CallTransfer(_LayerMessage):
    """Transfer the call to `to` once what is queued has played."""

    type: Literal["voiceflow.call.transfer"]
    to: Annotated[
        str,
        Field(min_length=1, max_length=MAX_DESTINATION_CHARS),
        AfterValidator(check_destination_shape),
    ]


LayerMessage = WaitStart | WaitEnd | AudioPlay | AudioClear | CallHangup | CallTransfer
_LAYER_MESSAGE: TypeAdapter[LayerMessage] = TypeAdapter(
    Annotated[LayerMessage, Field(discriminator="type")],
    # Errors are logged: they never repeat what was sent (audio, a transfer's phone number).
    config=ConfigDict(hide_input_in_errors=True),
)
TYPE_PREFIX = "voiceflow."


def parse_layer_message(message: Any) -> LayerMessage:
    """The typed message, or a ValueError saying what is wrong with it (pydantic's
    ValidationError is one): a type that is not `voiceflow.*` of ours, a missing or bad field."""
    kind = message.get("type") if isinstance(message, dict) else None
    if not (isinstance(kind, str) and kind.startswith(TYPE_PREFIX)):
        raise ValueError(f"type {kind!r} is not {TYPE_PREFIX}*")
    return _LAYER_MESSAGE.validate_python(message)
