"""Tools for the Realtime model: schemas from type hints and docstrings, refusals at definition
time, and runs that always end in a result the model can use."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import enum
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from voiceflow_channels.realtime.tools import Tool, Toolbox


class Speed(enum.Enum):
    STANDARD = "standard"
    EXPRESS = "express"


class Address(BaseModel):
    """A postal address."""

    street: str
    title: str | None = None


def check_order_status(
    order_id: str,
    carrier: Literal["ups", "dhl"],
    speed: Speed = Speed.STANDARD,
    tags: list[str] | None = None,
    weight_kg: float = 1.5,
    gift: bool = False,
    *,
    address: Address | None = None,
) -> dict[str, Any]:
    """Look up an order's status,
    for the caller.

    Nothing here reaches the model.

    Args:
        order_id: The order number, as the caller
            said it.
        carrier (str): Who ships it.
        address: Where it goes.

    Returns:
        The order's status.
    """
    return {"order_id": order_id, "speed": speed, "address": address}


def test_a_representative_function_is_offered_under_exactly_this_schema():
    assert Tool.from_function(check_order_status).definition() == {
        "type": "function",
        "name": "check_order_status",
        "description": "Look up an order's status, for the caller.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {
                    "type": "string",
                    "description": "The order number, as the caller said it.",
                },
                "carrier": {
                    "type": "string",
                    "enum": ["ups", "dhl"],
                    "description": "Who ships it.",
                },
                "speed": {"type": "string", "enum": ["standard", "express"], "default": "standard"},
                "tags": {
                    "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                    "default": None,
                },
                "weight_kg": {"type": "number", "default": 1.5},
                "gift": {"type": "boolean", "default": False},
                "address": {
                    "anyOf": [
                        {
                            "type": "object",
                            "description": "A postal address.",
                            "properties": {
                                "street": {"type": "string"},
                                "title": {
                                    "anyOf": [{"type": "string"}, {"type": "null"}],
                                    "default": None,
                                },
                            },
                            "required": ["street"],
                            "additionalProperties": False,
                        },
                        {"type": "null"},
                    ],
                    "default": None,
                    "description": "Where it goes.",
                },
            },
            "required": ["order_id", "carrier"],
            "additionalProperties": False,
        },
    }


def test_the_schema_has_no_titles_and_no_references_left():
    text = json.dumps(Tool.from_function(check_order_status).parameters)
    assert '"title": {' in text  # Address's field named title stays
    assert '"title": "' not in text
    assert "$ref" not in text and "$defs" not in text


def test_descriptions_come_from_the_first_paragraph_and_any_of_the_args_headers():
    def send_code(phone: str, digits: int = 6) -> str:
        """Text the caller a one-time code.
        Arguments:
            phone: Where to send it.
            digits: How long the code is.
        """
        return "sent"

    def no_docstring(x: int) -> int:
        return x

    tool = Tool.from_function(send_code)
    assert tool.description == "Text the caller a one-time code."
    assert tool.parameters["properties"]["phone"]["description"] == "Where to send it."
    assert tool.parameters["properties"]["digits"]["description"] == "How long the code is."
    bare = Tool.from_function(no_docstring)
    assert bare.description == ""
    assert bare.parameters["properties"] == {"x": {"type": "integer"}}


def star_args(*numbers: int) -> int:
    return 0


def star_kwargs(**options: str) -> str:
    return ""


def positional_only(code: str, /) -> str:
    return code


def untyped(order_id, note: str = "") -> str:
    return ""


def too_long() -> str:
    return ""


too_long.__name__ = "x" * 65


def prüfe() -> str:
    return ""


@pytest.mark.parametrize(
    ("fn", "named"),
    [
        (star_args, ["star_args", "'numbers'", "named"]),
        (star_kwargs, ["star_kwargs", "'options'", "named"]),
        (positional_only, ["positional_only", "'code'", "named"]),
        (untyped, ["untyped", "'order_id'", "type hint", "order_id: str"]),
        (lambda: "", ["<lambda>", "name"]),
        (too_long, ["x" * 65, "1 to 64"]),
        (prüfe, ["prüfe", "1 to 64"]),
    ],
)
def test_a_function_the_model_cannot_call_is_refused_naming_what_to_change(fn, named):
    with pytest.raises(TypeError) as refused:
        Tool.from_function(fn)
    for words in named:
        assert words in str(refused.value)


class Node(BaseModel):
    children: list[Node]


def walk(tree: Node) -> int:
    return 0


def unknown_hint(when: Tomorrow) -> str:  # noqa: F821
    return ""


def test_a_recursive_type_and_an_unresolvable_hint_are_refused():
    with pytest.raises(TypeError, match="tool walk: the type Node contains itself"):
        Tool.from_function(walk)
    with pytest.raises(TypeError, match="tool unknown_hint: its type hints cannot be resolved"):
        Tool.from_function(unknown_hint)


def test_two_tools_with_one_name_are_refused_and_definitions_keep_their_order():
    def b() -> str:
        return ""

    with pytest.raises(ValueError, match="two tools are named check_order_status"):
        Toolbox(check_order_status, Tool.from_function(check_order_status))
    box = Toolbox(b, check_order_status)
    assert [d["name"] for d in box.definitions()] == ["b", "check_order_status"]


async def run(fn, arguments: str, *, timeout_s: float = 5, **kwargs):
    return await Tool.from_function(fn).run(
        arguments, timeout_s=timeout_s, call_sid="CA123", **kwargs
    )


async def test_arguments_reach_the_function_as_its_own_types():
    result = await run(
        check_order_status,
        '{"order_id": 42, "carrier": "dhl", "speed": "express", "address": {"street": "Main"}}',
    )
    assert result.ok and result.error is None
    assert json.loads(result.output) == {
        "order_id": "42",  # a number where a string is expected is taken as its digits
        "speed": "express",
        "address": {"street": "Main", "title": None},
    }


async def test_parameters_named_like_pydantic_attributes_are_passed_by_their_own_names():
    def echo(json: str, _private: int, model_config: bool) -> list[object]:
        return [json, _private, model_config]

    result = await run(echo, '{"json": "a", "_private": 1, "model_config": true}')
    assert result.output == '["a",1,true]'


@pytest.mark.parametrize(
    ("arguments", "told"),
    [
        ('{"order_id": ', "arguments: Invalid JSON"),
        ("[]", "arguments: Input should be an object"),
        (
            '{"carrier": "fedex"}',
            "order_id: Field required; carrier: Input should be 'ups' or 'dhl'",
        ),
        (
            '{"order_id": "1", "carrier": "ups", "rush": true}',
            "rush: Extra inputs are not permitted",
        ),
        ('{"order_id": "1", "carrier": "ups", "address": {}}', "address.street: Field required"),
    ],
)
async def test_arguments_that_do_not_fit_become_an_error_result_telling_the_model_why(
    arguments, told
):
    result = await run(check_order_status, arguments)
    assert not result.ok and result.error == "invalid arguments"
    assert result.output.startswith("The tool check_order_status was not run")
    assert told in result.output
    assert result.output.endswith("Call it again with arguments that fit its parameters.")


async def test_a_tool_name_the_model_made_up_is_an_error_result():
    result = await Toolbox(check_order_status).run(
        "refund_everything", "{}", timeout_s=5, call_sid="CA123"
    )
    assert not result.ok and result.error == "no tool named refund_everything"
    assert "There is no tool named refund_everything" in result.output


async def test_an_async_tool_is_awaited_on_the_loop_and_a_sync_one_runs_in_the_pool():
    async def on_loop() -> str:
        return threading.current_thread().name

    def in_pool() -> str:
        return threading.current_thread().name

    assert (await run(on_loop, "{}")).output == threading.current_thread().name
    assert (await run(in_pool, "{}")).output.startswith("voiceflow-tool")


async def test_a_sync_tool_sees_the_callers_context_variables():
    call_sid: contextvars.ContextVar[str] = contextvars.ContextVar("call_sid")
    call_sid.set("CA9")

    def whose() -> str:
        return call_sid.get("none")

    assert (await run(whose, "{}")).output == "CA9"


async def test_two_sync_tools_run_at_once_in_different_threads():
    first_in, second_in = threading.Event(), threading.Event()

    def first() -> str:
        first_in.set()
        if not second_in.wait(timeout=5):
            raise RuntimeError("second never ran alongside")
        return threading.current_thread().name

    def second() -> str:
        second_in.set()
        if not first_in.wait(timeout=5):
            raise RuntimeError("first never ran alongside")
        return threading.current_thread().name

    box = Toolbox(first, second)
    results = await asyncio.gather(
        box.run("first", "{}", timeout_s=10, call_sid="CA1"),
        box.run("second", "{}", timeout_s=10, call_sid="CA2"),
    )
    assert [r.ok for r in results] == [True, True]
    assert results[0].output != results[1].output


async def test_an_async_tool_past_its_deadline_is_cancelled_and_the_model_told_to_apologise(
    caplog,
):
    cancelled = asyncio.Event()

    async def slow_lookup() -> str:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return "never"

    result = await run(slow_lookup, "{}", timeout_s=0.01)
    assert cancelled.is_set()
    assert not result.ok and result.error == "TimeoutError after 0.01 s"
    assert result.output == (
        "The tool slow_lookup failed: TimeoutError after 0.01 s. Apologise and offer another way."
    )
    assert [r.getMessage() for r in caplog.records] == [
        "voiceflow tool slow_lookup timed out callSid=CA123"
    ]


async def test_a_sync_tool_past_its_deadline_runs_on_and_what_it_returns_is_dropped(caplog):
    release, returned = threading.Event(), threading.Event()

    def stuck_query() -> str:
        release.wait(timeout=10)
        returned.set()
        return "too late"

    executor = ThreadPoolExecutor(max_workers=1)
    try:
        result = await run(stuck_query, "{}", timeout_s=0.01, executor=executor)
        assert result.error == "TimeoutError after 0.01 s"
        assert not returned.is_set()
    finally:
        release.set()
        executor.shutdown(wait=True)
    assert returned.is_set()
    assert [r.getMessage() for r in caplog.records] == [
        "voiceflow tool stuck_query timed out callSid=CA123"
    ]


async def test_a_failing_tool_logs_its_traceback_but_never_its_arguments(caplog):
    def charge_card(card_number: str) -> str:
        raise ConnectionError("payments are down")

    result = await run(charge_card, '{"card_number": "4111111111111111"}')
    assert not result.ok and result.error == "ConnectionError"
    assert result.output == (
        "The tool charge_card failed: ConnectionError. Apologise and offer another way."
    )
    (record,) = caplog.records
    assert record.name == "voiceflow_channels" and record.levelno == logging.ERROR
    assert record.getMessage() == "voiceflow tool charge_card failed callSid=CA123"
    assert record.exc_info and record.exc_info[0] is ConnectionError
    assert "4111111111111111" not in caplog.text


async def test_a_timeout_raised_by_the_tool_itself_is_its_failure_not_the_deadline():
    async def call_courier() -> str:
        raise TimeoutError("courier API")

    result = await run(call_courier, "{}")
    assert result.error == "TimeoutError"


@dataclasses.dataclass
class Parcel:
    weight_kg: float
    speed: Speed


class Opaque:
    def __str__(self) -> str:
        return "opaque"


circular: list[object] = []
circular.append(circular)


@pytest.mark.parametrize(
    ("value", "output"),
    [
        ("Shipped on Monday.", "Shipped on Monday."),
        ({"status": "shipped", "items": 2}, '{"status":"shipped","items":2}'),
        (Address(street="Main"), '{"street":"Main","title":null}'),
        (Parcel(1.5, Speed.EXPRESS), '{"weight_kg":1.5,"speed":"express"}'),
        (None, "null"),
        ({"box": Opaque()}, '{"box":"opaque"}'),
        (circular, "[[...]]"),
    ],
)
async def test_what_a_tool_returns_becomes_its_output_text(value, output):
    def give() -> object:
        return value

    assert (await run(give, "{}")).output == output
