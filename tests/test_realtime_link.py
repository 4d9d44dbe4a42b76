"""How the link types the model's events: as the SDK class their `type` names, and through the
SDK's own parse when that class refuses one or the type is one the SDK does not know."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.realtime import (
    InputAudioBufferSpeechStartedEvent,
    ResponseAudioDeltaEvent,
    ResponseDoneEvent,
)

from voiceflow_channels.realtime.link import ModelFailure, _parse


class SDKParse:
    """Stands in for the connection: what its parse_event was handed."""

    def __init__(self) -> None:
        self.parsed: list[bytes] = []

    def parse_event(self, data: bytes) -> Any:
        self.parsed.append(data)
        return "the SDK's parse"


def test_a_delta_comes_back_as_its_sdk_class_with_its_fields() -> None:
    sdk = SDKParse()
    event = {
        "type": "response.output_audio.delta",
        "event_id": "e1",
        "response_id": "r1",
        "item_id": "i1",
        "output_index": 0,
        "content_index": 0,
        "delta": "//8=",
    }
    parsed = _parse(orjson.dumps(event), sdk)  # type: ignore[arg-type]
    assert isinstance(parsed, ResponseAudioDeltaEvent)
    assert (parsed.item_id, parsed.response_id, parsed.delta) == ("i1", "r1", "//8=")
    assert sdk.parsed == []


def test_nested_fields_are_models_as_the_handlers_read_them() -> None:
    event = {
        "type": "response.done",
        "event_id": "e2",
        "response": {"id": "r1", "status": "completed", "output": []},
    }
    parsed = _parse(orjson.dumps(event), SDKParse())  # type: ignore[arg-type]
    assert isinstance(parsed, ResponseDoneEvent)
    assert parsed.response.id == "r1" and parsed.response.status == "completed"


def test_an_event_its_class_refuses_goes_to_the_sdk_parse() -> None:
    sdk = SDKParse()
    data = orjson.dumps({"type": "input_audio_buffer.speech_started", "audio_start_ms": "soon"})
    assert _parse(data, sdk) == "the SDK's parse"  # type: ignore[arg-type]
    assert sdk.parsed == [data]


def test_an_unknown_type_goes_to_the_sdk_parse() -> None:
    sdk = SDKParse()
    unknown = orjson.dumps({"type": "response.something_new", "event_id": "e3"})
    assert _parse(unknown, sdk) == "the SDK's parse"  # type: ignore[arg-type]
    assert sdk.parsed == [unknown]


@pytest.mark.parametrize("data", [b"[1, 2]", b'{"event_id": "e5"}', b"not json"])
def test_a_message_that_is_not_an_event_is_a_bad_message_failure(data: bytes) -> None:
    sdk = SDKParse()
    with pytest.raises(ModelFailure) as failure:
        _parse(data, sdk)  # type: ignore[arg-type]
    assert failure.value.kind == "bad_message" and sdk.parsed == []


def test_a_valid_speech_started_is_typed() -> None:
    data = orjson.dumps(
        {
            "type": "input_audio_buffer.speech_started",
            "event_id": "e4",
            "audio_start_ms": 700,
            "item_id": "i2",
        }
    )
    parsed = _parse(data, SDKParse())  # type: ignore[arg-type]
    assert isinstance(parsed, InputAudioBufferSpeechStartedEvent) and parsed.audio_start_ms == 700
