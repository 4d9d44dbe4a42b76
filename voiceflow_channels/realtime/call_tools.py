"""The tools of one call: the assistant's own, and the opt-in call-control ones (`end_call`,
`transfer_call`). Run when a response ends in function calls: the call waits (the chime past its
threshold) while they run, each bounded, and their outputs go back with one `response.create`."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from .. import conf
from ..destinations import check_destination
from .book import FunctionCall
from .tools import Tool, Toolbox, ToolResult

if TYPE_CHECKING:
    from .assistant import RealtimeAssistant

log = logging.getLogger("voiceflow_channels")

END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"


class CallTools:
    """The assistant's tools (`toolbox`), plus the call-control tools its class offers. The
    assistant is passed in, never kept: it holds this."""

    def __init__(self, toolbox: Toolbox) -> None:
        self.toolbox = toolbox

    def definitions(self, assistant: RealtimeAssistant) -> list[dict[str, Any]]:
        """Every tool the session offers the model, as session.update's `tools`."""
        offered = self.toolbox.definitions()
        if assistant.end_call:
            offered.append(END_CALL_TOOL.definition())
        if assistant.transfers:
            offered.append(_transfer_definition(sorted(assistant.transfers)))
        return offered

    async def run(self, assistant: RealtimeAssistant, calls: list[FunctionCall]) -> None:
        """Run a response's function calls. Call control goes last: a hang-up or transfer
        lets what is queued (the goodbye of that response) be heard first."""
        ending = [c for c in calls if c.name in (END_CALL, TRANSFER_CALL)]
        work = [c for c in calls if c not in ending]
        if work:
            assistant.book.tools_started(work)
            assistant.start_wait("tool:" + ",".join(c.name for c in work))
            results = await asyncio.gather(*(self._run(assistant, c) for c in work))
            for call, result in zip(work, results, strict=True):
                assistant.book.tool_finished(result.ok, result.duration_s)
                await _output(assistant, call, result.output)
            if not ending:
                await _respond(assistant)
        for call in ending:
            await self._end(assistant, call)

    async def _run(self, assistant: RealtimeAssistant, call: FunctionCall) -> ToolResult:
        return await self.toolbox.run(
            call.name,
            call.arguments,
            timeout_s=conf.tool_timeout_s(),
            call_sid=assistant.call.call_sid or "-",
        )

    async def _end(self, assistant: RealtimeAssistant, call: FunctionCall) -> None:
        if call.name == END_CALL:
            await _output(assistant, call, "The call ends once your last words have been heard.")
            await assistant.hangup()
            return
        name = _destination_name(call.arguments)
        to = assistant.transfers.get(name or "")
        try:
            if to is None:
                raise ValueError(f"no destination named {name!r}")
            to = check_destination(to, conf.transfer_allowlist())
        except ValueError as exc:
            log.warning(
                "voiceflow refused the model's transfer callSid=%s: %s",
                assistant.call.call_sid,
                exc,
            )
            await _output(
                assistant, call, f"The transfer failed ({exc}). Tell the caller and go on."
            )
            await _respond(assistant)
            return
        await _output(assistant, call, "The caller is transferred once your last words are heard.")
        await assistant.transfer(to)


async def _output(assistant: RealtimeAssistant, call: FunctionCall, output: str) -> None:
    if assistant.link is not None:
        item = {"type": "function_call_output", "call_id": call.call_id, "output": output}
        await assistant.link.send({"type": "conversation.item.create", "item": item})


async def _respond(assistant: RealtimeAssistant) -> None:
    if assistant.link is not None:
        await assistant.link.send({"type": "response.create"})


def end_call() -> str:
    """End the phone call, after saying goodbye. Call it only once the caller is done."""
    return "ending"


END_CALL_TOOL = Tool.from_function(end_call)


def _transfer_definition(names: list[str]) -> dict[str, Any]:
    """`transfer_call(destination)`, the destination one of the assistant's named ones."""
    return {
        "type": "function",
        "name": TRANSFER_CALL,
        "description": "Transfer the caller to a person, after telling them so.",
        "parameters": {
            "type": "object",
            "properties": {
                "destination": {
                    "type": "string",
                    "enum": names,
                    "description": "Who to transfer the caller to.",
                }
            },
            "required": ["destination"],
            "additionalProperties": False,
        },
    }


def _destination_name(arguments: str) -> str | None:
    try:
        value = json.loads(arguments)
    except ValueError:
        return None
    name = value.get("destination") if isinstance(value, dict) else None
    return name if isinstance(name, str) else None
