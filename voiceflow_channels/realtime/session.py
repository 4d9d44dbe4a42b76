"""The `session.update` an assistant sends, GA-shaped: Twilio's mu-law both ways (`audio/pcmu`,
no resampling), the server's VAD creating the responses to the caller's turns, the tools; and
the input settings an assistant declares (`noise_reduction`, `turn_detection`,
`interrupt_response`), checked against the SDK's own types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from openai.types.realtime.noise_reduction_type import NoiseReductionType
from openai.types.realtime.realtime_audio_input_turn_detection import SemanticVad, ServerVad
from pydantic import BaseModel, ValidationError

PCMU = {"type": "audio/pcmu"}
NOISE_REDUCTIONS: tuple[str | None, ...] = (*get_args(NoiseReductionType), None)
# Telephony defaults, per type, for the fields not given (README, "Real phone lines": why).
VAD_DEFAULTS: dict[str, dict[str, Any]] = {
    "server_vad": {"threshold": 0.6, "prefix_padding_ms": 300, "silence_duration_ms": 600},
    "semantic_vad": {"eagerness": "auto"},
}
VAD_MODELS: dict[str, type[BaseModel]] = {"server_vad": ServerVad, "semantic_vad": SemanticVad}
# The edge's, not the class's: the VAD creates the responses to the caller's turns, interrupting
# is `interrupt_response`, and how long a silence lasts is for the edge to judge.
EDGE_FIELDS = frozenset({"type", "create_response", "interrupt_response", "idle_timeout_ms"})


@dataclass(frozen=True)
class InputSettings:
    """An assistant's input settings, checked: the noise reduction and the turn detection as
    sent (every field, `interrupt_response` among them)."""

    noise_reduction: str | None
    turn_detection: dict[str, Any]

    @property
    def padding_ms(self) -> int:
        """What the VAD adds before speech (server_vad); 0 for semantic_vad."""
        return int(self.turn_detection.get("prefix_padding_ms", 0))

    @property
    def silence_ms(self) -> int:
        """The silence that ends speech (server_vad); 0 for semantic_vad."""
        return int(self.turn_detection.get("silence_duration_ms", 0))


def input_settings(
    noise_reduction: object, turn_detection: object, interrupt_response: object
) -> InputSettings:
    """The settings, checked against the SDK's types; ValueError naming the attribute, the value
    and what is allowed."""
    if noise_reduction not in NOISE_REDUCTIONS:
        raise ValueError(
            f"noise_reduction = {noise_reduction!r} is not allowed: use 'near_field' (a handset "
            "held to the ear), 'far_field' (a speakerphone) or None (off)."
        )
    if not isinstance(interrupt_response, bool):
        raise ValueError(
            f"interrupt_response = {interrupt_response!r} is not allowed: use True (the caller's "
            "speech stops the assistant) or False."
        )
    fields = _turn_detection_fields(turn_detection)
    model = VAD_MODELS[fields["type"]]
    try:
        checked = model.model_validate(
            fields | {"interrupt_response": interrupt_response}, strict=True
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(step) for step in error["loc"])
        raise ValueError(
            f"turn_detection[{name!r}] = {error['input']!r} is not allowed: {error['msg']}."
        ) from None
    detection = checked.model_dump(exclude_none=True)
    threshold = detection.get("threshold", 0.5)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(
            f"turn_detection['threshold'] = {threshold!r} is not allowed: use 0.0 to 1.0 (higher "
            "needs louder speech)."
        )
    for name, value in detection.items():
        if name.endswith("_ms") and value < 0:
            raise ValueError(f"turn_detection[{name!r}] = {value!r} is not allowed: use ms >= 0.")
    return InputSettings(noise_reduction, detection)


def _turn_detection_fields(turn_detection: object) -> dict[str, Any]:
    """The turn detection's fields, the telephony defaults filled in: from a type's name, or a
    mapping with a `type` and fields of that type's SDK model the class may set."""
    types = " or ".join(map(repr, VAD_MODELS))
    if isinstance(turn_detection, str):
        turn_detection = {"type": turn_detection}
    if not isinstance(turn_detection, Mapping) or turn_detection.get("type") not in VAD_MODELS:
        raise ValueError(
            f"turn_detection = {turn_detection!r} is not allowed: use {types}, or a dict with "
            "that type and its fields (the assistant needs the server's VAD to take turns)."
        )
    kind = turn_detection["type"]
    settable = sorted(VAD_MODELS[kind].model_fields.keys() - EDGE_FIELDS)
    unknown = sorted(set(turn_detection) - set(settable) - {"type"})
    if unknown:
        raise ValueError(
            f"turn_detection[{unknown[0]!r}] is not a field {kind} lets you set: use "
            f"{', '.join(settable)} (interrupt_response is an attribute of its own)."
        )
    return {"type": kind} | VAD_DEFAULTS[kind] | dict(turn_detection)


def session_config(
    *,
    model: str,
    instructions: str,
    voice: str,
    audio_input: InputSettings,
    tools: Sequence[dict[str, Any]],
    transcription_model: str | None,
) -> dict[str, Any]:
    """The `session` of a `session.update`: the server's VAD answers each turn
    (`create_response`), and stops its answer when the caller speaks if `interrupt_response`."""
    noise = audio_input.noise_reduction
    audio: dict[str, Any] = {
        "format": PCMU,
        "noise_reduction": None if noise is None else {"type": noise},
        "turn_detection": audio_input.turn_detection | {"create_response": True},
    }
    if transcription_model:
        audio["transcription"] = {"model": transcription_model}
    return {
        "type": "realtime",
        "model": model,
        "output_modalities": ["audio"],
        "instructions": instructions,
        "audio": {"input": audio, "output": {"format": PCMU, "voice": voice}},
        "tools": list(tools),
        "tool_choice": "auto",
    }
