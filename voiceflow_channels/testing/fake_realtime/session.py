"""One connection to the fake Realtime server: its session, its conversation, its server VAD.

Each client event type is handled by the method named after it (`session.update` ->
`session_update`), as Channels dispatches. Responses are spoken by `Responder` (responses.py) in a
task of their own, so appended audio is heard (and can barge in) while a response plays.
Everything a test may want to assert is recorded here, in plain lists and counters.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from openai.types.realtime import (
    ConversationItemAdded,
    ConversationItemCreateEvent,
    ConversationItemDeletedEvent,
    ConversationItemDeleteEvent,
    ConversationItemDone,
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemTruncatedEvent,
    ConversationItemTruncateEvent,
    InputAudioBufferAppendEvent,
    InputAudioBufferClearedEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    RealtimeErrorEvent,
    ResponseCancelEvent,
    ResponseCreateEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
    SessionUpdateEvent,
)
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ...mulaw import BYTES_PER_MS
from .conversation import (
    MIN_COMMIT_MS,
    FunctionOutput,
    Item,
    Truncate,
    default_session,
    merge_session,
    truncate_problem,
)
from .responses import FAILURE_MESSAGES, Responder, ResponseRecord
from .script import Script
from .vad import EnergyVad
from .wire import ClientEventError, ServerEvents, parse_client_event

if TYPE_CHECKING:
    from .server import FakeRealtime

BETA_MESSAGE = (
    "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
)


class FakeConnection:
    """One websocket to the fake, from `session.created` to its close."""

    def __init__(self, fake: FakeRealtime, ws: ServerConnection, number: int, model: str) -> None:
        self.fake = fake
        self.ws = ws
        self.number = number
        self.model = model
        self.script: Script = fake.script  # read once: a test may change the fake's for later
        self.session: dict[str, Any] = default_session(model)
        self.sessions: list[dict[str, Any]] = []  # each `session` a session.update carried
        self.client_event_types: list[str] = []  # in order, a run of appends once
        self.appended_bytes = 0
        self.truncates: list[Truncate] = []
        self.function_outputs: list[FunctionOutput] = []
        self.response_creates = 0
        self.response_instructions: list[str | None] = []  # each accepted response.create's
        self.cancels = 0  # response.cancel events received
        self.errors_sent: list[dict[str, Any]] = []
        self.malformed_sent = 0  # messages sent that are not events (Script.malformed_after_s)
        self.speech_started_ms: list[int] = []
        self.speech_stopped_ms: list[int] = []
        self.items: dict[str, Item] = {}
        self.created_items: list[dict[str, Any]] = []  # what the client created, in order
        self.user_turns = 0
        self.close_code: int | None = None
        self.beta = False  # it came with the beta header (and was refused)
        self.closed = asyncio.Event()
        self.responder = Responder(self)
        self._vad = EnergyVad(self.script.vad_threshold_rms, self.script.vad_start_ms)
        self._uncommitted_bytes = 0
        self._speech_item_id: str | None = None
        self._last_item_id: str | None = None
        self._client_event_id: str | None = None  # the event being answered, for its errors

    @property
    def appended_ms(self) -> float:
        """Mu-law audio appended on this connection, in ms."""
        return self.appended_bytes / BYTES_PER_MS

    @property
    def responses(self) -> list[ResponseRecord]:
        return self.responder.responses

    @property
    def events(self) -> ServerEvents:
        return self.fake.events

    async def run(self) -> None:
        """Serve the connection until it closes."""
        deadlines = asyncio.create_task(self._deadlines())
        try:
            await self.send(SessionCreatedEvent, type="session.created", session=self.session)
            async for message in self.ws:
                await self._receive(message)
        except ConnectionClosed:
            pass
        finally:
            deadlines.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deadlines  # observed: a failure in it fails the fake
            await self.responder.stop()
            self._closed()

    async def refuse_beta(self) -> None:
        """OpenAI's answer to the beta header since the beta shut down: an error, then 4000."""
        self.beta = True
        with contextlib.suppress(ConnectionClosed):
            await self.error("beta_api_shape_disabled", BETA_MESSAGE)
            await self.close(4000, "invalid_request_error.beta_api_shape_disabled")
        self._closed()

    def _closed(self) -> None:
        self.close_code = self.ws.close_code
        self.closed.set()
        self.fake.changed()

    async def send(self, model: type[BaseModel], **fields: Any) -> BaseModel:
        """Build a server event from its SDK model and send it."""
        event, text = self.events.build(model, **fields)
        await self.ws.send(text)
        self.fake.changed()
        return event

    async def error(
        self, code: str, message: str, param: str | None = None, *, kind: str = ""
    ) -> None:
        """An `error` event: recoverable, the socket stays open (as OpenAI's)."""
        error: dict[str, Any] = {"type": kind or "invalid_request_error", "code": code}
        error |= {"message": message, "param": param, "event_id": self._client_event_id}
        self.errors_sent.append(error)
        await self.send(RealtimeErrorEvent, type="error", error=error)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    # -- client events ------------------------------------------------------------------------

    async def _receive(self, message: str | bytes) -> None:
        self._client_event_id = None
        try:
            event, data = parse_client_event(message)
        except ClientEventError as exc:
            self.client_event_types.append(exc.event_type or "<invalid>")
            self._client_event_id = exc.event_id
            await self.error(exc.code, exc.message, exc.param)
            return
        self._client_event_id = data.get("event_id")
        kind = data["type"]
        # A run of appends is one entry: the list grows with turns, not with frames (a
        # benchmark's fake hears 50 a second a call); appended_bytes counts the audio.
        if kind != "input_audio_buffer.append" or self.client_event_types[-1:] != [kind]:
            self.client_event_types.append(kind)
        handler: Callable[[Any], Any] = getattr(self, data["type"].replace(".", "_"))
        await handler(event)
        self.fake.changed()

    async def session_update(self, event: SessionUpdateEvent) -> None:
        update = event.session.model_dump(exclude_unset=True)
        if update.get("type") != "realtime":
            await self.error(
                "invalid_value",
                f"Invalid value: {update.get('type')!r}. This is a realtime (speech-to-speech) "
                "session: session.type must be 'realtime'.",
                "session.type",
            )
            return
        voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
        if voice is not None and voice != self._voice and self.responder.spoke:
            await self.error(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                "session.audio.output.voice",
            )
            return
        self.sessions.append(update)
        merge_session(self.session, update)
        await self.send(SessionUpdatedEvent, type="session.updated", session=self.session)

    async def input_audio_buffer_append(self, event: InputAudioBufferAppendEvent) -> None:
        try:
            audio = base64.b64decode(event.audio, validate=True)
        except binascii.Error:
            await self.error("invalid_value", "Invalid 'audio'. Expected base64 audio.", "audio")
            return
        self.appended_bytes += len(audio)
        self._uncommitted_bytes += len(audio)
        turn_detection = self._turn_detection
        if turn_detection is None or self._input_format != "audio/pcmu":
            return  # the fake's VAD hears mu-law only
        silence_ms = turn_detection.get("silence_duration_ms") or 500
        padding_ms = turn_detection.get("prefix_padding_ms")
        for vad_event in self._vad.feed(
            audio, silence_ms, 300 if padding_ms is None else padding_ms
        ):
            if vad_event.kind == "started":
                await self._speech_started(vad_event.ms, turn_detection)
            else:
                await self._speech_stopped(vad_event.ms, turn_detection)

    async def input_audio_buffer_commit(self, _event: BaseModel) -> None:
        ms = self._uncommitted_bytes / BYTES_PER_MS
        if ms < MIN_COMMIT_MS:
            await self.error(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {ms:.2f}ms of audio.",
            )
            return
        self._vad.reset()
        await self._commit(self._speech_item_id or self.events.new_id("item"))

    async def input_audio_buffer_clear(self, _event: BaseModel) -> None:
        self._uncommitted_bytes = 0
        self._vad.reset()
        self._speech_item_id = None
        await self.send(InputAudioBufferClearedEvent, type="input_audio_buffer.cleared")

    async def output_audio_buffer_clear(self, _event: BaseModel) -> None:
        """WebRTC and SIP only; over a websocket, nothing is buffered server-side."""

    async def conversation_item_retrieve(self, _event: BaseModel) -> None:
        """Accepted quietly: no test needs the item back."""

    async def conversation_item_create(self, event: ConversationItemCreateEvent) -> None:
        fields = event.item.model_dump(exclude_unset=True)
        call_id = fields.get("call_id")
        if fields["type"] == "function_call_output" and call_id not in self.responder.calls:
            await self.error(
                "invalid_value",
                f"No tool call found for function call output with call_id {call_id}.",
                "item.call_id",
            )
            return
        item_id = fields.get("id") or self.events.new_id("item")
        fields |= {"id": item_id, "object": "realtime.item", "status": "completed"}
        self.created_items.append(fields)
        self.fake.changed()
        item = Item(item_id, fields["type"], fields.get("role"))
        if fields["type"] == "function_call_output":
            self.function_outputs.append(FunctionOutput(fields["call_id"], fields["output"]))
        elif fields["type"] == "function_call":
            self.responder.calls[fields["call_id"]] = item  # a history's call, for its output
        await self.add_item(item, fields)

    async def conversation_item_delete(self, event: ConversationItemDeleteEvent) -> None:
        if self.items.pop(event.item_id, None) is None:
            await self.error("item_not_found", f"Item with item_id '{event.item_id}' not found.")
            return
        await self.send(
            ConversationItemDeletedEvent, type="conversation.item.deleted", item_id=event.item_id
        )

    async def conversation_item_truncate(self, event: ConversationItemTruncateEvent) -> None:
        item = self.items.get(event.item_id)
        generated_ms = None if item is None else item.audio_bytes // BYTES_PER_MS
        problem = truncate_problem(event, item)
        self.truncates.append(
            Truncate(
                event.item_id,
                event.content_index,
                event.audio_end_ms,
                generated_ms,
                problem[0] if problem else None,
            )
        )
        self.fake.log(
            f"truncate {event.item_id} audio_end_ms={event.audio_end_ms} "
            f"generated_ms={generated_ms} -> {problem[0] if problem else 'truncated'}"
        )
        if problem is not None:
            await self.error(*problem)
            return
        await self.send(
            ConversationItemTruncatedEvent,
            type="conversation.item.truncated",
            item_id=event.item_id,
            content_index=event.content_index,
            audio_end_ms=event.audio_end_ms,
        )

    @property
    def user_texts(self) -> list[str]:
        """The text of each user message the client created (typed words, keypad entries)."""
        return [
            part["text"]
            for item in self.created_items
            if item["type"] == "message" and item.get("role") == "user"
            for part in item.get("content") or ()
            if part.get("type") == "input_text"
        ]

    async def response_create(self, event: ResponseCreateEvent) -> None:
        self.response_creates += 1
        active = self.responder.active
        if active is not None:
            await self.error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {active.id}. Wait "
                "until the response is finished before creating a new one.",
            )
            return
        self.response_instructions.append(event.response.instructions if event.response else None)
        await self.responder.start()

    async def response_cancel(self, event: ResponseCancelEvent) -> None:
        self.cancels += 1
        active = self.responder.active
        if active is None or event.response_id not in (None, active.id):
            await self.error(
                "response_cancel_not_active", "Cancellation failed: no active response found."
            )
            return
        active.cancel("client_cancelled")

    # -- the conversation ---------------------------------------------------------------------

    async def add_item(self, item: Item, fields: dict[str, Any]) -> None:
        """Add an item the client or the VAD made, whole: `conversation.item.added`, `.done`."""
        self.items[item.id] = item
        previous, self._last_item_id = self._last_item_id, item.id
        for model, kind in ((ConversationItemAdded, "added"), (ConversationItemDone, "done")):
            await self.send(
                model, type=f"conversation.item.{kind}", item=fields, previous_item_id=previous
            )

    def link_item(self, item: Item) -> str | None:
        """Put a response's item in the conversation; answer the item before it."""
        self.items[item.id] = item
        previous, self._last_item_id = self._last_item_id, item.id
        return previous

    async def _speech_started(self, audio_start_ms: int, turn_detection: dict[str, Any]) -> None:
        self._speech_item_id = self.events.new_id("item")
        self.speech_started_ms.append(audio_start_ms)
        await self.send(
            InputAudioBufferSpeechStartedEvent,
            type="input_audio_buffer.speech_started",
            audio_start_ms=audio_start_ms,
            item_id=self._speech_item_id,
        )
        active = self.responder.active
        if active is not None and turn_detection.get("interrupt_response") is not False:
            active.cancel("turn_detected")

    async def _speech_stopped(self, audio_end_ms: int, turn_detection: dict[str, Any]) -> None:
        item_id = self._speech_item_id or self.events.new_id("item")
        self.speech_stopped_ms.append(audio_end_ms)
        await self.send(
            InputAudioBufferSpeechStoppedEvent,
            type="input_audio_buffer.speech_stopped",
            audio_end_ms=audio_end_ms,
            item_id=item_id,
        )
        await self._commit(item_id)
        active = self.responder.active
        wanted = turn_detection.get("create_response") is not False
        if wanted and (active is None or active.cancel_reason is not None):
            await self.responder.start()

    async def _commit(self, item_id: str) -> None:
        self._uncommitted_bytes, self._speech_item_id = 0, None
        await self.send(
            InputAudioBufferCommittedEvent,
            type="input_audio_buffer.committed",
            item_id=item_id,
            previous_item_id=self._last_item_id,
        )
        fields = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        await self.add_item(Item(item_id, "message", "user"), fields)
        self.user_turns += 1
        if (self.session["audio"]["input"].get("transcription") or {}).get("model"):
            await self.send(
                ConversationItemInputAudioTranscriptionCompletedEvent,
                type="conversation.item.input_audio_transcription.completed",
                item_id=item_id,
                content_index=0,
                transcript=self.script.caller_said(self.user_turns),
                usage={"type": "duration", "seconds": 1.0},
            )

    async def _deadlines(self) -> None:
        """The scripted moments of a session, in time order: a malformed message (the session
        goes on), a server error or the session cap (it ends)."""
        script = self.script
        moments = []
        failing = script.fails(self.number)
        if script.malformed_after_s is not None and failing:
            moments.append((script.malformed_after_s, "malformed"))
        if script.fail_after_s is not None and failing:
            moments.append((script.fail_after_s, "fail"))
        if script.session_cap_s is not None:
            moments.append((script.session_cap_s, "cap"))
        loop = asyncio.get_running_loop()
        started = loop.time()
        expired = "Your session hit the maximum duration of 60 minutes."
        with contextlib.suppress(ConnectionClosed):  # the client left first
            for after_s, moment in sorted(moments):
                await asyncio.sleep(max(0.0, started + after_s - loop.time()))
                if moment == "malformed":
                    await self.ws.send(script.malformed_message)
                    self.malformed_sent += 1
                    self.fake.changed()
                elif moment == "fail":
                    await self.error(
                        "server_error", FAILURE_MESSAGES["server_error"], kind="server_error"
                    )
                    await self.close(1011, "server_error")
                    return
                else:
                    await self.error("session_expired", expired)
                    await self.close(1001, expired)
                    return

    @property
    def _turn_detection(self) -> dict[str, Any] | None:
        turn_detection: dict[str, Any] | None = self.session["audio"]["input"].get("turn_detection")
        return turn_detection

    @property
    def _input_format(self) -> str | None:
        return (self.session["audio"]["input"].get("format") or {}).get("type")

    @property
    def _voice(self) -> Any:
        return self.session["audio"]["output"].get("voice")
