"""`RealtimeAssistant`: OpenAI's Realtime model behind a call. A plain object bound to its call
through a narrow port (`CallPort`, which the stream's consumer implements): thin over the SDK
(`link`), with the decisions in the conversation book (`book`), the session's shape in
`session`, and the model's events routed through one table of handlers typed with the SDK's
own event classes (`HANDLERS`, at the end)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar, get_args

from openai.types.realtime import (
    ConversationItemAdded,
    ConversationItemInputAudioTranscriptionCompletedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    RealtimeErrorEvent,
    RealtimeServerEvent,
    ResponseAudioDeltaEvent,
    ResponseAudioDoneEvent,
    ResponseAudioTranscriptDoneEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    SessionUpdatedEvent,
)
from pydantic import BaseModel

from .. import conf, metrics
from ..call_port import CallInfo, CallPort
from ..conversation_store import ConversationRecord
from .book import ConversationBook, Delta, FunctionCall
from .call_tools import CallTools
from .conversation import INTERRUPTED, Conversation
from .fallback import fallback_audio
from .link import Frames, ModelFailure, ModelLink
from .session import TurnDetection, session_config
from .tools import Toolbox

log = logging.getLogger("voiceflow_channels")

# Errors the barge-in race makes harmless: the caller spoke while a response was being created,
# or a cancel found it already over.
HARMLESS_ERRORS = frozenset(
    {"conversation_already_has_active_response", "response_cancel_not_active"}
)
# Said just before the server closes the session at its cap: the close reconnects.
SESSION_EXPIRED = "session_expired"
RATE_LIMIT_ERRORS = frozenset({"rate_limit_exceeded", "insufficient_quota"})
# Model sessions that ended mid-call and are worth reopening with the history; a refused key
# or a rate limit is not (the fallback answers those).
RETRYABLE = frozenset({"closed", "session_cap", "session_error", "connect"})
# The history a new session is given, at most: ~6,000 words, a long call's worth, a quarter of
# the smallest Realtime context (32k, gpt-realtime) so instructions, tools and audio fit.
REPLAY_MAX_TOKENS = 8000
RESUMED = (
    "\n\nThis phone call is already under way: the conversation so far is above. Do not greet "
    "the caller again; carry on from where it was, and answer by speaking."
)
# The consumer's side of the binding: a subclass that overrode one would cut the call's wiring.
WIRING = frozenset(
    {
        "attach",
        "hear",
        "utterance_ended",
        "quiet_moment",
        "detach",
        "summary",
        "quiet",
        "transcript",
    }
)


class RealtimeAssistant:
    """A phone assistant: set `instructions` (and `voice`, `greeting`, `tools`...) on a subclass
    and mount it with `build_router(assistant=MyAssistant)`; one instance serves one call. The
    caller's mu-law goes to the model as is, the model's audio comes back mark-clocked; a
    barge-in clears it at once and truncates the item at what the caller heard; tools run while
    the chime plays; failures fall back to a short audio, then a hang-up (or a transfer), never
    dead air. Hooks (async, optional): `prepare(call)` before the model is asked anything,
    `on_transcript(role, text)`."""

    instructions: str = "You are a helpful assistant on a phone call. Keep it short."
    voice: str = "marin"
    model: str | None = None  # None: VOICEFLOW_REALTIME_MODEL
    turn_detection: TurnDetection = "server_vad"
    greeting: str | None = None  # what the assistant says first, as an instruction
    tools: Sequence[Callable[..., Any]] = ()
    end_call: bool = False  # offer the model an end_call tool (hang up after goodbye)
    transfers: Mapping[str, str] = MappingProxyType({})  # name -> destination: transfer_call
    fallback: str | None = None  # after a failure: None hangs up, a name of `transfers` transfers
    # The caller's words, transcribed: what a resumed conversation remembers of them. None
    # turns it off, and with it the record: a moved call then starts over.
    transcription_model: str | None = "gpt-4o-mini-transcribe"
    resume_line: str | None = None  # said (as an instruction) when a moved call carries on

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = sorted(WIRING & vars(cls).keys())
        if overridden:
            raise TypeError(
                f"{cls.__name__} overrides {', '.join(overridden)}: that is the call's wiring, "
                "not a hook. Set the call up in `async def prepare(self, call)` and follow it in "
                "`on_transcript`."
            )

    async def prepare(self, call: CallInfo) -> None:
        """The call started: set this call's `instructions`, `voice`, `greeting`, `tools`... from
        who is calling (`call.tenant_id`, `call.from_number`, `call.parameters`). Runs before the
        model is connected; one that raises is logged, and the call goes on as the class says."""

    async def on_transcript(self, role: str, text: str) -> None:
        """A finished transcript: role "user" (with a transcription_model) or "assistant"."""

    # The binding, called by the consumer (see WIRING).

    async def attach(self, port: CallPort) -> None:
        """Bind to the call whose stream just started: read its conversation, if it had one
        (the call moved here), and open the model session."""
        self._port: CallPort | None = port
        self._sid = port.info.call_sid
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()  # call_ids of the tools running
        self.frames = Frames()
        self.link: ModelLink | None = None
        self._failed = False
        self._last_error = ""  # the last error the model sent, if a close follows it
        self._quiet = asyncio.Event()
        self.book = ConversationBook(port.heard_ms, asyncio.get_running_loop().time)
        self.conversation = Conversation(conf.conversation_max_items())
        self._record = ConversationRecord(self._sid)
        try:
            await self.prepare(port.info)
        except Exception:
            metrics.INTERNAL_ERRORS.labels("prepare").inc()
            log.exception("voiceflow prepare() raised callSid=%s; the call goes on", self._sid)
        self._tools = CallTools(Toolbox(*self.tools), self.end_call, self.transfers)
        self._spawn(self._converse())

    @property
    def quiet(self) -> bool:
        """A moment the call can move without cutting anyone off: nothing of the assistant's
        queued or playing, no response in progress, no tool running, the caller not speaking."""
        port = self._port
        return (
            port is not None
            and not port.playing
            and self.book.current is None
            and not self._running
            and not self.book.speaking
        )

    async def quiet_moment(self) -> None:
        """Wait for the next quiet moment, then for the conversation's record to be written."""
        self._update_quiet()
        await self._quiet.wait()
        await self._record.flushed()

    def hear(self, payload_b64: str) -> None:
        """One frame of the caller's audio, base64 as Twilio sent it: queued for the model."""
        self.frames.put(payload_b64)

    def utterance_ended(self, key: str, played_ms: int, cleared_ms: int) -> None:
        """An utterance is over, `played_ms` of it heard and `cleared_ms` cut: the book follows
        what plays, and the conversation keeps the words that were heard."""
        self.book.utterance_ended(key)
        if self.conversation.heard(key, played_ms, cleared_ms):
            self._save()
        self._update_quiet()

    async def detach(self) -> None:
        """The call is over: the model session closes, the figures are published, and the port
        is let go (nothing keeps the ended call alive)."""
        self._port = None
        self._update_quiet()
        for task in list(self._tasks):
            task.cancel()
        if self.link is not None:
            await self.link.close()
            self.link = None
        self._publish()

    def summary(self) -> str:
        """The assistant's fields for the call's summary line."""
        return f"{self.book.summary()} model_audio_dropped={self.frames.dropped}"

    def transcript(self) -> list[dict[str, str]]:
        """The conversation's words for the call's record, the assistant's as heard."""
        return [
            {"role": e["kind"], "text": e["text"]}
            if e["kind"] in ("user", "assistant")
            else {"role": "tool", "text": f"{e['name']}({e['arguments']})"}
            for e in self.conversation.saved()
            if e["kind"] != "function_call_output"
        ]

    # The model's events (see HANDLERS).

    async def _session_updated(self, event: SessionUpdatedEvent) -> None:
        port = self._port
        if port is not None and port.waiting_for == "reconnect":
            port.end_wait()

    async def _speech_started(self, event: InputAudioBufferSpeechStartedEvent) -> None:
        barge = self.book.speech_started()
        port = self._port
        if port is not None:
            port.timeline.speech_started()
        if not barge.clear or port is None:
            return
        port.timeline.add("barge_in")
        await port.clear()
        if barge.item_id is not None:
            await self._send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": barge.item_id,
                    "content_index": 0,
                    "audio_end_ms": barge.audio_end_ms,
                }
            )

    async def _speech_stopped(self, event: InputAudioBufferSpeechStoppedEvent) -> None:
        self.book.speech_stopped()
        if self._port is not None:
            self._port.timeline.speech_stopped()
        self._update_quiet()

    async def _item_added(self, event: ConversationItemAdded) -> None:
        item = event.item
        if item.id is None:
            return
        if item.type == "message" and item.role in ("user", "assistant"):
            self.conversation.added(item.id, item.role)
        elif item.type == "function_call":
            self.conversation.added(item.id, "function_call")

    async def _response_created(self, event: ResponseCreatedEvent) -> None:
        if event.response.id is not None:
            self.book.response_created(event.response.id)
            self._update_quiet()

    async def _audio_delta(self, event: ResponseAudioDeltaEvent) -> None:
        port = self._port
        if port is None:
            return
        try:
            audio = base64.b64decode(event.delta, validate=True)
        except (binascii.Error, ValueError, TypeError):
            metrics.MODEL_ERRORS.labels("bad_audio_delta").inc()
            return
        kind = self.book.audio_delta(event.response_id, event.item_id, len(audio))
        if kind is Delta.DROP:
            port.late_audio()
        elif kind is Delta.MORE:
            await port.play_more(event.item_id, audio)
        else:
            if self.book.answer_started():
                port.end_wait()  # the answer speaks: the chime stops at once
            await port.play(audio, event.item_id, key=event.item_id, final=False)

    async def _audio_done(self, event: ResponseAudioDoneEvent) -> None:
        if self.book.audio_done(event.item_id) and self._port is not None:
            await self._port.play_more(event.item_id, b"", final=True)

    async def _assistant_transcript(self, event: ResponseAudioTranscriptDoneEvent) -> None:
        if self.conversation.assistant_said(event.item_id, event.transcript):
            self._save()
        await self._transcript("assistant", event.transcript)

    async def _user_transcript(
        self, event: ConversationItemInputAudioTranscriptionCompletedEvent
    ) -> None:
        if self.conversation.user_said(event.item_id, event.transcript):
            self._save()
        await self._transcript("user", event.transcript)

    async def _response_done(self, event: ResponseDoneEvent) -> None:
        response = event.response
        await self._close_open(response.id)
        calls = []
        for item in response.output or ():
            if item.type == "function_call":
                call = FunctionCall(item.call_id or "", item.name or "", item.arguments or "{}")
                calls.append(call)
                if item.id and response.status == "completed":
                    self.conversation.tool_called(item.id, call.call_id, call.name, call.arguments)
        if self.book.response_done(response.id or "", response.status or "", calls):
            self._running.update(c.call_id for c in calls)
            self._spawn(self._run_tools(calls))
        if calls:
            self._save()
        self._update_quiet()

    async def _error(self, event: RealtimeErrorEvent) -> None:
        error = event.error
        code = error.code or error.type or "unknown"
        if code in RATE_LIMIT_ERRORS:
            raise ModelFailure("rate_limit", f"{code}: {error.message}")
        metrics.MODEL_ERRORS.labels(code).inc()
        if code == SESSION_EXPIRED:
            return
        if code in HARMLESS_ERRORS:
            if self._port is not None and self._port.debug:
                log.debug("voiceflow model callSid=%s: %s (harmless)", self._sid, code)
            return
        self._last_error = f"{code}: {error.message}"
        log.warning(
            "voiceflow model error callSid=%s: %s %s; the call goes on",
            self._sid,
            code,
            error.message,
        )

    # The session.

    async def _converse(self) -> None:
        """The call's model session: given the call's conversation if it had one (it moved
        here), reopened with the history when it ends mid-call (up to VOICEFLOW_MODEL_RETRIES
        times; the session cap always), the caller hearing a short wait; else the fallback."""
        loop = asyncio.get_running_loop()
        if self.transcription_model:
            self._resume_saved(await self._record.load())
        self._greet = self.greeting is not None and not self.conversation
        how, since = "stream", loop.time()
        retries = conf.model_retries()
        while self._port is not None:
            try:
                self.link = await ModelLink.open(self._model(), self._session(), self.frames)
                await self._replay(how, since)
                await self._greet_when_ready()
                async for event in self.link.events():
                    await self._dispatch(event)
            except ModelFailure as failure:
                if self._port is None:
                    return  # the call ended, and closed the session itself
                await self._close_open(None)  # no more of their audio will come
                if failure.kind == "closed" and self._last_error:  # the error ended it
                    failure = ModelFailure("session_error", f"{self._last_error}; {failure.reason}")
                self._last_error = ""
                metrics.MODEL_FAILURES.labels(failure.kind).inc()
                if self.link is not None:
                    await self.link.close()
                    self.link = None
                if failure.kind in RETRYABLE and (failure.kind == "session_cap" or retries > 0):
                    retries -= failure.kind != "session_cap"
                    log.info(
                        "voiceflow model callSid=%s: %s; reopening the session with the "
                        "conversation (%d retries left)",
                        self._sid,
                        failure,
                        retries,
                    )
                    self._port.start_wait("reconnect")
                    how, since = "model", loop.time()
                    continue
                await self._fall_back(failure)
                return

    def _resume_saved(self, saved: object) -> None:
        if not saved:
            return
        try:
            self.conversation = Conversation.from_saved(conf.conversation_max_items(), saved)
        except ValueError as exc:
            metrics.CONVERSATION_FAILURES.labels("load").inc()
            log.warning(
                "voiceflow callSid=%s: the cache's conversation is not one (%s); starting over",
                self._sid,
                exc,
            )

    async def _replay(self, how: str, since: float) -> None:
        """Give the new session the conversation so far, before any response; a tool call
        whose output never came (its process went away) is closed as interrupted."""
        if not self.conversation:
            return
        for call in self.conversation.unanswered():
            if call.call_id not in self._running:
                self.conversation.tool_answered(_new_id(), call.call_id, INTERRUPTED)
        items = self.conversation.replay(REPLAY_MAX_TOKENS)
        for item in items:
            await self._send({"type": "conversation.item.create", "item": item})
        took_ms = (asyncio.get_running_loop().time() - since) * 1000
        metrics.CONVERSATIONS_RESUMED.labels(how).inc()
        if self._port is not None:
            self._port.timeline.add("resume", label=how)
        metrics.RESUME_LATENCY.labels(how).observe(took_ms)
        log.info(
            "voiceflow resumed callSid=%s (%s): %d items of the conversation in %.0f ms",
            self._sid,
            how,
            len(items),
            took_ms,
        )
        self._save()
        if how == "stream" and self.resume_line:
            instruction = f"Tell the caller, in the conversation's language: {self.resume_line}"
            await self._send({"type": "response.create", "response": {"instructions": instruction}})

    async def _dispatch(self, event: RealtimeServerEvent) -> None:
        handler = HANDLERS.get(event.type)
        if handler is None:
            if event.type not in KNOWN_EVENTS:
                metrics.MODEL_EVENTS_UNKNOWN.inc()
                if self._port is not None and self._port.debug:
                    log.debug("voiceflow model callSid=%s: unknown %r", self._sid, event.type)
            return
        try:
            await handler(self, event)
        except ModelFailure:
            raise
        except Exception:
            metrics.INTERNAL_ERRORS.labels("realtime_handler").inc()
            log.exception(
                "voiceflow handler for the model's %s raised callSid=%s; the call goes on",
                event.type,
                self._sid,
            )

    async def _fall_back(self, failure: ModelFailure) -> None:
        """Never dead air: a short audio, then a hang-up, or a transfer to `fallback`."""
        port = self._port
        if self._failed or port is None:
            return
        self._failed = True
        port.timeline.add("failure", label=failure.kind)
        log.warning(
            "voiceflow model failed callSid=%s (%s): %s; falling back to %s",
            self._sid,
            failure.kind,
            failure.reason,
            "a hang-up" if self.fallback is None else f"a transfer to {self.fallback}",
        )
        port.end_wait()
        await port.clear()
        await port.play(fallback_audio(), "fallback")
        to = self.transfers.get(self.fallback) if self.fallback is not None else None
        if to is not None:
            try:
                await port.transfer(to)
                return
            except ValueError:
                pass  # the port logged and counted the refusal: hang up instead
        await port.hangup()

    async def _run_tools(self, calls: list[FunctionCall]) -> None:
        port = self._port
        since, failed = (port.timeline.now_ms() if port else 0), self.book.figures.tools_failed
        try:
            if port is not None:
                await self._tools.run(calls, port, self.book, self._output, self._respond)
        finally:
            if port is not None:
                names = ",".join(c.name for c in calls)
                port.timeline.tools_ran(
                    names, since, failed=self.book.figures.tools_failed > failed
                )
            self._running.difference_update(c.call_id for c in calls)
            self._update_quiet()

    async def _output(self, call: FunctionCall, output: str) -> None:
        item_id = _new_id()
        self._running.discard(call.call_id)
        if self.conversation.tool_answered(item_id, call.call_id, output):
            self._save()
        item = {"id": item_id, "type": "function_call_output", "call_id": call.call_id}
        await self._send({"type": "conversation.item.create", "item": item | {"output": output}})

    async def _respond(self) -> None:
        await self._send({"type": "response.create"})

    async def _send(self, event: dict[str, Any]) -> None:
        if self.link is not None:
            await self.link.send(event)

    async def _close_open(self, response_id: str | None) -> None:
        """The response (None: the connection) ended: its utterances end with what they have."""
        for item_id in self.book.still_open(response_id):
            if self._port is not None:
                await self._port.play_more(item_id, b"", final=True)

    async def _greet_when_ready(self) -> None:
        if self._greet and self.link is not None:
            self._greet = False
            instruction = f"Greet the caller, saying: {self.greeting}"
            await self._send({"type": "response.create", "response": {"instructions": instruction}})

    async def _transcript(self, role: str, text: str | None) -> None:
        if not text:
            return
        if self._port is not None and self._port.debug:
            log.debug("voiceflow transcript callSid=%s %s: %s", self._sid, role, text)
        try:
            await self.on_transcript(role, text)
        except Exception:
            metrics.INTERNAL_ERRORS.labels("on_transcript").inc()
            log.exception("voiceflow on_transcript raised callSid=%s; the call goes on", self._sid)

    def _save(self) -> None:
        """Keep the conversation's complete items in the cache (only with the caller's words
        transcribed: without them a resume would remember one side)."""
        if self.transcription_model:
            self._record.save(self.conversation.saved())

    def _update_quiet(self) -> None:
        if self.quiet:
            self._quiet.set()
        else:
            self._quiet.clear()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _model(self) -> str:
        return self.model or conf.realtime_model()

    def _session(self) -> dict[str, Any]:
        return session_config(
            model=self._model(),
            instructions=self.instructions + (RESUMED if self.conversation else ""),
            voice=self.voice,
            turn_detection=self.turn_detection,
            tools=self._tools.definitions(),
            transcription_model=self.transcription_model,
        )

    def _publish(self) -> None:
        figures = self.book.figures
        metrics.MODEL_TURNS.inc(figures.turns)
        metrics.BARGE_INS.inc(figures.barge_ins)
        metrics.LATE_AUDIO.inc(figures.late_audio)
        metrics.CONVERSATION_ITEMS_DROPPED.inc(self.conversation.dropped)
        metrics.TOOLS_RUN.labels("ok").inc(figures.tools_run - figures.tools_failed)
        metrics.TOOLS_RUN.labels("failed").inc(figures.tools_failed)
        for ms in figures.response_ms:
            metrics.RESPONSE_LATENCY.observe(ms)
        for ms in figures.tool_ms:
            metrics.TOOL_DURATION.observe(ms)


def _new_id() -> str:
    """An id for an item the edge creates (within OpenAI's 32 characters)."""
    return "item_vf" + uuid.uuid4().hex[:24]


Event = TypeVar("Event", bound=BaseModel)
Handler = Callable[[RealtimeAssistant, Any], Awaitable[None]]


def _event_type(event: type[BaseModel]) -> str:
    """The `type` an SDK event class stands for (its Literal)."""
    (name,) = get_args(event.model_fields["type"].annotation)
    return str(name)


def _route(
    event: type[Event], handler: Callable[[RealtimeAssistant, Event], Awaitable[None]]
) -> tuple[str, Handler]:
    """One row of HANDLERS: the SDK's event class and the method typed to take it."""
    return _event_type(event), handler


# Every event the assistant acts on; the SDK's other server events are read and let go.
HANDLERS: Mapping[str, Handler] = dict(
    [
        _route(SessionUpdatedEvent, RealtimeAssistant._session_updated),
        _route(InputAudioBufferSpeechStartedEvent, RealtimeAssistant._speech_started),
        _route(InputAudioBufferSpeechStoppedEvent, RealtimeAssistant._speech_stopped),
        _route(ConversationItemAdded, RealtimeAssistant._item_added),
        _route(ResponseCreatedEvent, RealtimeAssistant._response_created),
        _route(ResponseAudioDeltaEvent, RealtimeAssistant._audio_delta),
        _route(ResponseAudioDoneEvent, RealtimeAssistant._audio_done),
        _route(ResponseAudioTranscriptDoneEvent, RealtimeAssistant._assistant_transcript),
        _route(
            ConversationItemInputAudioTranscriptionCompletedEvent,
            RealtimeAssistant._user_transcript,
        ),
        _route(ResponseDoneEvent, RealtimeAssistant._response_done),
        _route(RealtimeErrorEvent, RealtimeAssistant._error),
    ]
)
# The server events the SDK knows (GA): one outside them is counted as unknown.
KNOWN_EVENTS = frozenset(_event_type(event) for event in get_args(get_args(RealtimeServerEvent)[0]))
