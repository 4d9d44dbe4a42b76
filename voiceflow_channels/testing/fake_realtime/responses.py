"""The fake model speaking: each response's events, in OpenAI's order, paced on the wall clock.

A response runs in a task of its own (one at a time, in order), so the connection keeps reading
the caller's audio while it plays and a barge-in can cancel it mid-sentence. A cancelled response
ends the way OpenAI ends one (its open item closed `incomplete`, then `response.done` with status
`cancelled`), and then, if the script says so, a few of its deltas still arrive late.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openai.types.realtime import (
    ConversationItemAdded,
    ConversationItemDone,
    RateLimitsUpdatedEvent,
    ResponseAudioDeltaEvent,
    ResponseAudioDoneEvent,
    ResponseAudioTranscriptDeltaEvent,
    ResponseAudioTranscriptDoneEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
)
from websockets.exceptions import ConnectionClosed

from ...mulaw import BYTES_PER_MS
from .conversation import Item
from .script import FunctionCall, Reply, audio_bytes, chunks

if TYPE_CHECKING:
    from .session import FakeConnection

# How OpenAI words a failed response's error, for the codes a script is likely to use.
FAILURE_TYPES = {"rate_limit_exceeded": "tokens", "insufficient_quota": "insufficient_quota"}
FAILURE_MESSAGES = {
    "rate_limit_exceeded": "Rate limit reached on tokens per min (TPM). Please try again in 20ms.",
    "server_error": "The server had an error while processing your request. Sorry about that!",
}


@dataclass
class ResponseRecord:
    """One response: its number in its session, what it says, and how it ended."""

    id: str
    number: int
    reply: Reply
    status: str = "in_progress"  # then "completed", "cancelled", "failed" or "incomplete"
    cancel_reason: str | None = None  # "turn_detected" or "client_cancelled"
    items: list[Item] = field(default_factory=list)
    started: bool = False  # `response.created` sent
    done: bool = False  # `response.done` sent
    late_deltas_sent: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def audio_bytes(self) -> int:
        """Audio sent for this response, late deltas included."""
        return sum(item.audio_bytes for item in self.items)

    def cancel(self, reason: str) -> None:
        """Stop at the next delta; the first reason given is the one reported."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
            self._wake.set()


class Responder:
    """Starts a connection's responses and speaks them, one after the other."""

    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.responses: list[ResponseRecord] = []
        self.active: ResponseRecord | None = None  # created, `response.done` not yet sent
        self.calls: dict[str, Item] = {}  # call_id -> function_call item
        self.spoke = False  # any assistant audio sent (the voice is fixed from then on)
        self._asked = 0  # responses asked for, refused ones too: their numbers
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin the next response, unless the script rate-limits it."""
        connection, number = self.connection, self._asked
        self._asked += 1
        if number in connection.script.rate_limited_responses:
            await connection.error(
                "rate_limit_exceeded",
                f"Rate limit reached for {connection.model} on tokens per min (TPM). "
                "Please try again in 20ms.",
                kind="tokens",
            )
            return
        response = ResponseRecord(
            connection.events.new_id("resp"), number, connection.script.reply(number)
        )
        self.responses.append(response)
        self.active = response
        self._task = asyncio.create_task(self._run(response, self._task))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, response: ResponseRecord, previous: asyncio.Task[None] | None) -> None:
        try:
            if previous is not None:
                await previous  # the previous response's last (late) delta first
            await self._respond(response)
        except ConnectionClosed:
            pass
        except Exception as exc:
            self.connection.fake.crashed(exc)
            await self.connection.close(1011, "the fake failed")

    async def _respond(self, response: ResponseRecord) -> None:
        connection = self.connection
        await connection.send(
            ResponseCreatedEvent, type="response.created", response=self._response(response)
        )
        response.started = True
        connection.fake.changed()
        if connection.script.rate_limits_updated:
            await connection.send(
                RateLimitsUpdatedEvent,
                type="rate_limits.updated",
                rate_limits=[
                    {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                    {"name": "tokens", "limit": 40000, "remaining": 38000, "reset_seconds": 3.0},
                ],
            )
        reply, index = response.reply, 0
        if reply.failed is not None and connection.script.fails(connection.number):
            response.status = "failed"
        else:
            if reply.audio_ms > 0:
                await self._speak(response, index)
                index += 1
            for call in reply.function_calls if reply.incomplete is None else ():
                if response.cancel_reason is not None:
                    break
                await self._call(response, index, call)
                index += 1
            response.status = self._ended(response)
        await connection.send(
            ResponseDoneEvent, type="response.done", response=self._response(response)
        )
        response.done = True
        if self.active is response:  # not a response started since, behind this one
            self.active = None
        connection.fake.log(f"response {response.id} {response.status}")
        connection.fake.changed()
        if response.cancel_reason is not None:
            await self._late_deltas(response)

    @staticmethod
    def _ended(response: ResponseRecord) -> str:
        """How a response that ran ends: cancelled, incomplete (scripted), or completed."""
        if response.cancel_reason is not None:
            return "cancelled"
        return "completed" if response.reply.incomplete is None else "incomplete"

    async def _speak(self, response: ResponseRecord, index: int) -> None:
        """One assistant audio item: its deltas, paced, until done or cancelled."""
        connection, script = self.connection, self.connection.script
        item = Item(connection.events.new_id("item"), "message", "assistant")
        response.items.append(item)
        ids = {"response_id": response.id, "item_id": item.id, "output_index": index}
        await self._add(response, item, index, {"content": []})
        part = {"type": "audio", "transcript": ""}
        await connection.send(
            ResponseContentPartAddedEvent,
            type="response.content_part.added",
            content_index=0,
            part=part,
            **ids,
        )
        total = audio_bytes(response.reply.audio_ms)
        started = asyncio.get_running_loop().time()
        for chunk in chunks(script.chunk_bytes, total):
            await self._pace(response, started, item.audio_bytes)
            if response.cancel_reason is not None:
                break
            await self._delta(response, item, index, chunk)
        # A cut response's transcript is cut in proportion (OpenAI's is what it generated).
        transcript = response.reply.transcript
        transcript = transcript[: len(transcript) * item.audio_bytes // max(total, 1)]
        if transcript:
            await connection.send(
                ResponseAudioTranscriptDeltaEvent,
                type="response.output_audio_transcript.delta",
                content_index=0,
                delta=transcript,
                **ids,
            )
        await connection.send(
            ResponseAudioDoneEvent, type="response.output_audio.done", content_index=0, **ids
        )
        await connection.send(
            ResponseAudioTranscriptDoneEvent,
            type="response.output_audio_transcript.done",
            content_index=0,
            transcript=transcript,
            **ids,
        )
        part = {"type": "audio", "transcript": transcript}
        await connection.send(
            ResponseContentPartDoneEvent,
            type="response.content_part.done",
            content_index=0,
            part=part,
            **ids,
        )
        content = [{"type": "output_audio", "transcript": transcript}]
        await self._finish(response, item, index, {"content": content})

    async def _call(self, response: ResponseRecord, index: int, call: FunctionCall) -> None:
        """One function_call item, its arguments in one delta."""
        connection = self.connection
        item = Item(connection.events.new_id("item"), "function_call")
        call_id = connection.events.new_id("call")
        self.calls[call_id] = item
        response.items.append(item)
        fields = {"call_id": call_id, "name": call.name}
        await self._add(response, item, index, {**fields, "arguments": ""})
        ids = {"response_id": response.id, "item_id": item.id, "output_index": index}
        await connection.send(
            ResponseFunctionCallArgumentsDeltaEvent,
            type="response.function_call_arguments.delta",
            call_id=call_id,
            delta=call.arguments,
            **ids,
        )
        await connection.send(
            ResponseFunctionCallArgumentsDoneEvent,
            type="response.function_call_arguments.done",
            arguments=call.arguments,
            **fields,
            **ids,
        )
        await self._finish(response, item, index, {**fields, "arguments": call.arguments})

    async def _add(
        self, response: ResponseRecord, item: Item, index: int, fields: dict[str, Any]
    ) -> None:
        item.fields = {"id": item.id, "object": "realtime.item", "type": item.kind, **fields}
        if item.role is not None:
            item.fields["role"] = item.role
        item.fields["status"] = "in_progress"
        previous = self.connection.link_item(item)
        await self.connection.send(
            ResponseOutputItemAddedEvent,
            type="response.output_item.added",
            response_id=response.id,
            output_index=index,
            item=item.fields,
        )
        await self.connection.send(
            ConversationItemAdded,
            type="conversation.item.added",
            item=item.fields,
            previous_item_id=previous,
        )

    async def _finish(
        self, response: ResponseRecord, item: Item, index: int, fields: dict[str, Any]
    ) -> None:
        status = "completed" if self._ended(response) == "completed" else "incomplete"
        item.fields = {**item.fields, **fields, "status": status}
        await self.connection.send(
            ResponseOutputItemDoneEvent,
            type="response.output_item.done",
            response_id=response.id,
            output_index=index,
            item=item.fields,
        )
        await self.connection.send(
            ConversationItemDone, type="conversation.item.done", item=item.fields
        )

    async def _delta(self, response: ResponseRecord, item: Item, index: int, chunk: bytes) -> None:
        await self.connection.send(
            ResponseAudioDeltaEvent,
            type="response.output_audio.delta",
            response_id=response.id,
            item_id=item.id,
            output_index=index,
            content_index=0,
            delta=base64.b64encode(chunk).decode(),
        )
        item.audio_bytes += len(chunk)
        self.spoke = True

    async def _pace(self, response: ResponseRecord, started: float, sent_bytes: int) -> None:
        """Wait until the audio sent is `speed` times the time since the first delta was due,
        or the response is cancelled; unpaced, just let the connection read."""
        script = self.connection.script
        due = started + script.first_delta_ms / 1000
        if script.speed is not None:
            due += sent_bytes / BYTES_PER_MS / script.speed / 1000
        delay = due - asyncio.get_running_loop().time()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(response._wake.wait(), delay)

    async def _late_deltas(self, response: ResponseRecord) -> None:
        """The deltas already on their way when the response was cancelled: they follow its
        `response.done` (the edge must drop them)."""
        audio = [item for item in response.items if item.kind == "message"]
        count = self.connection.script.late_deltas
        if not audio or audio[0].audio_bytes == 0 or count == 0:
            return
        item = audio[0]
        index = response.items.index(item)
        for chunk in chunks(self.connection.script.chunk_bytes, None, item.audio_bytes):
            if response.late_deltas_sent == count:
                break
            await self._delta(response, item, index, chunk)
            response.late_deltas_sent += 1
        self.connection.fake.changed()

    def _response(self, response: ResponseRecord) -> dict[str, Any]:
        """The `response` object of `response.created` and `response.done`."""
        session = self.connection.session
        fields: dict[str, Any] = {
            "id": response.id,
            "object": "realtime.response",
            "status": response.status,
            "status_details": None,
            "output": [item.fields for item in response.items],
            "conversation_id": f"conv_{self.connection.number:06d}",
            "output_modalities": session["output_modalities"],
            "audio": {"output": {k: session["audio"]["output"][k] for k in ("format", "voice")}},
        }
        reply = response.reply
        if response.status == "cancelled":
            fields["status_details"] = {"type": "cancelled", "reason": response.cancel_reason}
        elif response.status == "incomplete":
            fields["status_details"] = {"type": "incomplete", "reason": reply.incomplete}
        elif response.status == "failed":
            code = reply.failed or "server_error"
            error = {"type": FAILURE_TYPES.get(code, "server_error"), "code": code}
            error["message"] = FAILURE_MESSAGES.get(code, f"The response failed ({code}).")
            fields["status_details"] = {"type": "failed", "error": error}
        return fields
