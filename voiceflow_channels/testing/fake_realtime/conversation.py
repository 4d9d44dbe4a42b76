"""The conversation as the fake keeps it, and OpenAI's rules over it: a new session's defaults,
how a session.update applies, which truncates are refused and how. Pure: no I/O."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from openai.types.realtime import ConversationItemTruncateEvent

from ...mulaw import BYTES_PER_MS

# OpenAI's defaults for a new session, in the GA shape.
DEFAULT_TURN_DETECTION = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "create_response": True,
    "interrupt_response": True,
}
SEMANTIC_VAD = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
MIN_COMMIT_MS = 100  # OpenAI refuses to commit less


@dataclass(frozen=True)
class Truncate:
    """A `conversation.item.truncate` as received, with the audio generated for the item then
    (None for an unknown item) and the error code it got (None: truncated)."""

    item_id: str
    content_index: int
    audio_end_ms: int
    generated_ms: int | None
    error: str | None


@dataclass(frozen=True)
class FunctionOutput:
    """A tool's result as the client handed it back (`function_call_output`)."""

    call_id: str
    output: str


@dataclass
class Item:
    """A conversation item as the fake knows it: what it is, and the audio generated for it."""

    id: str
    kind: str  # "message", "function_call", "function_call_output", ...
    role: str | None = None
    audio_bytes: int = 0
    fields: dict[str, Any] = field(default_factory=dict)  # as last sent


def truncate_problem(
    event: ConversationItemTruncateEvent, item: Item | None
) -> tuple[str, str, str] | None:
    """The error OpenAI answers this truncate with (code, message, param), or None."""
    if item is None:
        return "item_not_found", f"Item with item_id '{event.item_id}' not found.", "item_id"
    if item.role != "assistant" or item.kind != "message" or item.audio_bytes == 0:
        # OpenAI says this of an assistant item with no audio generated yet, too.
        return (
            "unsupported_content_type",
            "Only model output audio messages can be truncated",
            "item_id",
        )
    if event.content_index != 0:
        return "invalid_value", "Invalid 'content_index': the item has one part.", "content_index"
    if event.audio_end_ms < 0:
        return (
            "integer_below_min_value",
            "Invalid 'audio_end_ms': integer below minimum value. Expected a value >= 0, but "
            f"got {event.audio_end_ms} instead.",
            "audio_end_ms",
        )
    if event.audio_end_ms * BYTES_PER_MS > item.audio_bytes:
        generated_ms = item.audio_bytes // BYTES_PER_MS
        return (
            "invalid_value",
            f"Audio content of {generated_ms}ms is already shorter than {event.audio_end_ms}ms",
            "audio_end_ms",
        )
    return None


def default_session(model: str) -> dict[str, Any]:
    """The session OpenAI starts a connection with (before any session.update)."""
    pcm = {"type": "audio/pcm", "rate": 24000}
    return {
        "type": "realtime",
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "audio": {
            "input": {
                "format": dict(pcm),
                "noise_reduction": None,
                "transcription": None,
                "turn_detection": dict(DEFAULT_TURN_DETECTION),
            },
            "output": {"format": dict(pcm), "voice": "marin", "speed": 1.0},
        },
    }


def merge_session(session: dict[str, Any], update: dict[str, Any]) -> None:
    """Apply a session.update: nested objects field by field, except those with a `type`
    (a format, turn_detection), which replace the old one whole: their fields depend on it."""
    for key, value in update.items():
        nested = isinstance(value, dict) and isinstance(session.get(key), dict)
        if nested and "type" not in value:
            merge_session(session[key], value)
        elif key == "turn_detection" and value is not None:
            # OpenAI fills in the defaults of the type asked for.
            defaults = DEFAULT_TURN_DETECTION if value["type"] == "server_vad" else SEMANTIC_VAD
            session[key] = {**defaults, **value}
        else:
            session[key] = copy.deepcopy(value)
