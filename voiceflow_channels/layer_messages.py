"""The messages that reach a call through the channel layer, as pydantic models.

Framework-free. They come from other processes (any code that can `group_send` to the call's
group), so each is parsed by `parse_layer_message` before it touches the call: a bad one is a
clear ValidationError (a ValueError), logged and counted by the consumer, never a crash.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

MAX_REASON_CHARS = 64
MAX_LABEL_CHARS = 64
# One layer message carries at most 1 s of 8 kHz mu-law (8,000 bytes): far below what
# channels-redis and Redis carry comfortably, and 60 of them hold the default queue bound.
AUDIO_CHUNK_BYTES = 8_000
MAX_PARTS = 100_000


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
    utterance: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    label: Annotated[str, BeforeValidator(check_label)]
    part: int = Field(ge=0, lt=MAX_PARTS)
    final: bool
    audio: bytes = Field(min_length=1, max_length=AUDIO_CHUNK_BYTES)


class AudioClear(_LayerMessage):
    type: Literal["voiceflow.audio.clear"]


LayerMessage = WaitStart | WaitEnd | AudioPlay | AudioClear
_LAYER_MESSAGE: TypeAdapter[LayerMessage] = TypeAdapter(
    Annotated[LayerMessage, Field(discriminator="type")]
)
TYPE_PREFIX = "voiceflow."


def parse_layer_message(message: Any) -> LayerMessage:
    """The typed message, or a ValueError saying what is wrong with it (pydantic's
    ValidationError is one): a type that is not `voiceflow.*` of ours, a missing or bad field."""
    kind = message.get("type") if isinstance(message, dict) else None
    if not (isinstance(kind, str) and kind.startswith(TYPE_PREFIX)):
        raise ValueError(f"type {kind!r} is not {TYPE_PREFIX}*")
    return _LAYER_MESSAGE.validate_python(message)
