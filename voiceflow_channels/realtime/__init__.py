"""The model behind the edge: an OpenAI Realtime speech-to-speech assistant for each call
(`RealtimeAssistant`, which needs the `openai` extra), and the plain Python functions it may call
(`tools`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .assistant import RealtimeAssistant

__all__ = ["RealtimeAssistant"]


def __getattr__(name: str) -> object:
    # Imported on first use: `realtime.tools` and `realtime.book` stay importable without the
    # SDK, and a missing SDK is an error that says which extra to install.
    if name != "RealtimeAssistant":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from .assistant import RealtimeAssistant
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith(("openai", "websockets")):
            raise
        raise ModuleNotFoundError(
            "RealtimeAssistant needs the OpenAI SDK: pip install 'voiceflow-channels[openai]'",
            name=exc.name,
        ) from exc
    return RealtimeAssistant
