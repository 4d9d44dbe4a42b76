"""The GA wire format, both ways, through the SDK's own models (`openai.types.realtime`).

Client events are validated against the SDK's client event types, and everything those models
let through that they do not declare is refused, as OpenAI refuses it (`unknown_parameter`): the
SDK's models accept extra fields, so a beta-shaped field would otherwise pass. Server events are
built from the SDK's server event models with their `type` spelled out here, and refused if a
field is not the model's: a change in the SDK fails the fake's tests, not a live call.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any, get_args

from openai.types.realtime import RealtimeClientEvent
from pydantic import BaseModel, ValidationError

# The SDK's client event union (Annotated[Union[...], discriminator]) unpacked: type -> model.
# Dispatching on `type` ourselves keeps a validation error about the one model meant.
CLIENT_EVENTS: dict[str, type[BaseModel]] = {
    get_args(model.model_fields["type"].annotation)[0]: model
    for model in get_args(get_args(RealtimeClientEvent)[0])
}
# pydantic's location steps that are union members' names, not fields of the JSON.
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class ClientEventError(Exception):
    """A client event OpenAI would answer with an `error` event (the socket stays open)."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param
        self.event_type: str | None = None  # what the refused event said it was, if anything
        self.event_id: str | None = None


def parse_client_event(raw: str | bytes) -> tuple[BaseModel, dict[str, Any]]:
    """The event as the SDK's model, and as the JSON object it came as; ClientEventError for
    what OpenAI would refuse."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ClientEventError("invalid_json", f"The event is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise ClientEventError("invalid_json", "The event must be a JSON object.")
    try:
        return _parse_object(data)
    except ClientEventError as exc:
        event_type, event_id = data.get("type"), data.get("event_id")
        exc.event_type = event_type if isinstance(event_type, str) else None
        exc.event_id = event_id if isinstance(event_id, str) else None
        raise


def _parse_object(data: dict[str, Any]) -> tuple[BaseModel, dict[str, Any]]:
    model = CLIENT_EVENTS.get(data.get("type"))  # type: ignore[arg-type]
    if model is None:
        supported = ", ".join(f"'{name}'" for name in CLIENT_EVENTS)
        raise ClientEventError(
            "invalid_value",
            f"Invalid value: {data.get('type')!r}. Supported values are: {supported}.",
            "type",
        )
    try:
        event = model.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc) from exc
    unknown = next(unknown_fields(event), None)
    if unknown is not None:
        raise ClientEventError("unknown_parameter", f"Unknown parameter: '{unknown}'.", unknown)
    return event, data


def unknown_fields(model: BaseModel, path: str = "") -> Iterator[str]:
    """The dotted paths of the fields in `model` (nested models and lists too) that its class
    does not declare."""
    for name in model.model_extra or {}:
        yield f"{path}{name}"
    for name in type(model).model_fields:
        yield from _unknown_in(getattr(model, name), f"{path}{name}")


def _unknown_in(value: object, path: str) -> Iterator[str]:
    if isinstance(value, BaseModel):
        yield from unknown_fields(value, f"{path}.")
    elif isinstance(value, list):
        for index, element in enumerate(value):
            yield from _unknown_in(element, f"{path}[{index}]")


def _from_validation(exc: ValidationError) -> ClientEventError:
    """The first problem, worded and coded the way OpenAI words and codes it."""
    error = exc.errors()[0]
    param = ""
    for step in error["loc"]:
        if isinstance(step, int):
            param += f"[{step}]"
        elif _FIELD_NAME.fullmatch(step):
            param += f".{step}" if param else step
    if error["type"] == "missing":
        return ClientEventError(
            "missing_required_parameter", f"Missing required parameter: '{param}'.", param
        )
    if error["type"] in ("literal_error", "enum"):
        return ClientEventError(
            "invalid_value", f"Invalid value: {error['input']!r}. {error['msg']}.", param
        )
    return ClientEventError("invalid_type", f"Invalid type for '{param}': {error['msg']}.", param)


class ServerEvents:
    """Builds each server event from its SDK model; hands out the ids of events, items and
    responses."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def new_id(self, prefix: str) -> str:
        """A new id, unique in this fake: `resp_000001`, `item_000002`, ..."""
        counter = self._counters.setdefault(prefix, itertools.count(1))
        return f"{prefix}_{next(counter):06d}"

    def build(self, model: type[BaseModel], **fields: Any) -> tuple[BaseModel, str]:
        """The event (its `type` among `fields`) and its JSON text, only the fields given."""
        event = model(event_id=self.new_id("event"), **fields)
        unknown = next(unknown_fields(event), None)
        if unknown is not None:
            raise TypeError(
                f"{model.__name__} has no field {unknown!r}: the openai SDK's models changed; "
                "update the fake Realtime server to match"
            )
        return event, event.model_dump_json(exclude_unset=True)
