"""The tools of one call: the assistant's own, and the opt-in call-control ones (`end_call`,
`transfer_call`). Run when a response ends in function calls: the call waits (the chime past its
threshold) while they run, each bounded, and their outputs go back with one `response.create`.
Sync tools run in the process's `tool_threads()`, with Django's connection hygiene around each."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from django.db import close_old_connections

from .. import conf, metrics
from ..call_port import CallPort
from .book import ConversationBook, FunctionCall
from .tool_threads import ToolThreads
from .tools import Tool, Toolbox

T = TypeVar("T")

log = logging.getLogger("voiceflow_channels")

END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"

Output = Callable[[FunctionCall, str], Awaitable[None]]


class CallTools:
    """The assistant's tools (`toolbox`), plus the call-control tools it offers: `end_call`,
    and `transfer_call` to one of the named `transfers`."""

    def __init__(self, toolbox: Toolbox, end_call: bool, transfers: Mapping[str, str]) -> None:
        self.toolbox = toolbox
        self.end_call = end_call
        self.transfers = transfers

    def definitions(self) -> list[dict[str, Any]]:
        """Every tool the session offers the model, as session.update's `tools`."""
        offered = self.toolbox.definitions()
        if self.end_call:
            offered.append(END_CALL_TOOL.definition())
        if self.transfers:
            offered.append(_transfer_definition(sorted(self.transfers)))
        return offered

    async def run(
        self,
        calls: list[FunctionCall],
        port: CallPort,
        book: ConversationBook,
        output: Output,
        respond: Callable[[], Awaitable[None]],
    ) -> None:
        """Run a response's function calls, each output given back with `output`, then one
        `respond()`. Call control goes last: a hang-up or transfer lets what is queued (the
        goodbye of that response) be heard first."""
        ending = [c for c in calls if c.name in (END_CALL, TRANSFER_CALL)]
        work = [c for c in calls if c not in ending]
        if work:
            book.tools_started(work)
            port.start_wait("tool:" + ",".join(c.name for c in work))
            results = await asyncio.gather(
                *(
                    self.toolbox.run(
                        c.name,
                        c.arguments,
                        timeout_s=conf.tool_timeout_s(),
                        call_sid=port.info.call_sid,
                        executor=tool_threads(),
                    )
                    for c in work
                )
            )
            for call, result in zip(work, results, strict=True):
                book.tool_finished(result.ok, result.duration_s)
                await output(call, result.output)
            if not ending:
                await respond()
        for call in ending:
            if call.name == END_CALL:
                await output(call, "The call ends once your last words have been heard.")
                await port.hangup()
            else:
                await self._transfer(call, port, output, respond)

    async def _transfer(
        self,
        call: FunctionCall,
        port: CallPort,
        output: Output,
        respond: Callable[[], Awaitable[None]],
    ) -> None:
        name = _destination_name(call.arguments)
        to = self.transfers.get(name or "")
        try:
            if to is None:
                metrics.CALL_CONTROL_FAILURES.labels("transfer_refused").inc()
                log.warning(
                    "voiceflow refused the model's transfer callSid=%s: no destination named %r",
                    port.info.call_sid,
                    name,
                )
                raise ValueError(f"no destination named {name!r}")
            await port.transfer(to)  # checked, logged and counted there; refused: ValueError
        except ValueError as exc:
            await output(call, f"The transfer failed ({exc}). Tell the caller and go on.")
            await respond()
            return
        await output(call, "The caller is transferred once your last words are heard.")


@functools.cache
def tool_threads() -> ToolThreads:
    """The process's threads for sync tools, VOICEFLOW_TOOL_THREADS of them, made on first use
    (after any fork); `voiceflow_tool_threads_busy` counts those running."""
    return ToolThreads(
        conf.tool_threads(), busy=metrics.TOOL_THREADS_BUSY.set, around=with_fresh_connections
    )


def with_fresh_connections(call: Callable[[], T]) -> T:
    """`call()` with Django's connection hygiene around it, as Django gives a view and Channels'
    `database_sync_to_async` a consumer: connections past CONN_MAX_AGE, or broken, are closed
    before (the call gets a fresh one) and after (none is left open past its age)."""
    close_old_connections()
    try:
        return call()
    finally:
        close_old_connections()


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
