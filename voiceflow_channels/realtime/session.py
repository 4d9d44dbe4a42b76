"""The `session.update` an assistant sends, GA-shaped: Twilio's mu-law both ways (`audio/pcmu`,
no resampling), the server's VAD creating the responses to the caller's turns, the tools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

TurnDetection = Literal["server_vad", "semantic_vad"]
PCMU = {"type": "audio/pcmu"}


def session_config(
    *,
    model: str,
    instructions: str,
    voice: str,
    turn_detection: TurnDetection,
    tools: Sequence[dict[str, Any]],
    transcription_model: str | None,
) -> dict[str, Any]:
    """The `session` of a `session.update`: the server's VAD answers each turn
    (`create_response`) and stops its answer when the caller speaks (`interrupt_response`)."""
    detection: dict[str, Any] = {
        "type": turn_detection,
        "create_response": True,
        "interrupt_response": True,
    }
    if turn_detection == "server_vad":
        detection |= {"threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}
    audio_input: dict[str, Any] = {"format": PCMU, "turn_detection": detection}
    if transcription_model:
        audio_input["transcription"] = {"model": transcription_model}
    return {
        "type": "realtime",
        "model": model,
        "output_modalities": ["audio"],
        "instructions": instructions,
        "audio": {"input": audio_input, "output": {"format": PCMU, "voice": voice}},
        "tools": list(tools),
        "tool_choice": "auto",
    }
