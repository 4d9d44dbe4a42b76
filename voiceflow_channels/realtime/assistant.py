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
from typing import Any, TypeVar

from openai.types.realtime import (
    ConversationItemAdded,
    ConversationItemInputAudioTranscriptionCompletedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    RealtimeErrorEvent,
    RealtimeResponse,
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
from ..tasks import spawn
from .blips import FalseBargeIns
from .book import Barge, ConversationBook, Delta, FunctionCall
from .call_tools import CallTools
from .conversation import INTERRUPTED, Conversation
from .fallback import fallback_audio
from .link import EVENT_CLASSES, Frames, ModelFailure, ModelLink, event_type
from .phone_line import Binding, PhoneLine
from .session import InputSettings, input_settings, session_config
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
RETRYABLE = frozenset(
    {
        "closed",
        "session_cap",
        "session_error",
        "connect",
        "response_failed",
        "bad_message",
        "internal",
    }
)
# A response that fails is asked for again once, after this pause; the next one failing too
# ends the session (a model failure).
RESPONSE_RETRY_S = 0.5
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
        "pressed",
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
    # The caller's side of the line (README, "Real phone lines"): checked when the class is
    # defined against the SDK's types.
    noise_reduction: str | None = "near_field"  # "far_field" (speakerphones), None: off
    turn_detection: str | Mapping[str, Any] = "server_vad"  # or semantic_vad, or a dict
    interrupt_response: bool = True  # the caller's speech stops the assistant
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
        try:
            input_settings(cls.noise_reduction, cls.turn_detection, cls.interrupt_response)
        except ValueError as exc:
            raise TypeError(f"{cls.__name__}.{exc}") from None

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
        self._failed_in_a_row = 0  # responses that failed since the last one that completed
        self._asked: dict[str, Any] | None = None  # the last response.create, until created
        self._requests: dict[str, dict[str, Any]] = {}  # response id -> the create that asked
        self._unanswered: dict[str, Any] | None = None  # asked again by the next session
        self._quiet = asyncio.Event()
        self.book = ConversationBook(port.heard_ms, asyncio.get_running_loop().time)
        self.line = PhoneLine(
            Binding(port, self._interrupt, self._tell, self._send, self._responding, self._spawn)
        )
        self.conversation = Conversation(conf.conversation_max_items())
        self._record = ConversationRecord(self._sid)
        try:
            await self.prepare(port.info)
        except Exception:
            metrics.INTERNAL_ERRORS.labels("prepare").inc()
            log.exception("voiceflow prepare() raised callSid=%s; the call goes on", self._sid)
        self._input = self._input_settings()
        self.blips = FalseBargeIns(
            conf.min_barge_in_ms(),
            self._input.padding_ms,
            self._input.silence_ms,
            transcribed=bool(self.transcription_model),
        )
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

    async def pressed(self, key: str) -> None:
        """The caller pressed a key: gathered for the model (VOICEFLOW_DTMF_TO_MODEL)."""
        await self.line.pressed(key)

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
        self.line.close()
        for task in self._tasks - {asyncio.current_task()}:  # not the one ending the call
            task.cancel()
        if self.link is not None:
            await self.link.close()
            self.link = None
        self._publish()

    def summary(self) -> str:
        """The assistant's fields for the call's summary line."""
        return (
            f"{self.book.summary()} false_barge_ins={self.blips.count} "
            f"model_audio_dropped={self.frames.dropped} {self.line.summary()}"
        )

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
        self._update_quiet()  # a silent caller is timed once the model can answer

    async def _speech_started(self, event: InputAudioBufferSpeechStartedEvent) -> None:
        self.line.answered()
        barge = self.book.speech_started(interrupt=self.interrupt_response)
        self._update_quiet()  # a caller who speaks is not silent: no check-in while they talk
        port = self._port
        if port is not None:
            port.timeline.speech_started()
            if barge.clear:
                self.blips.barged_in(event.item_id, event.audio_start_ms)
        await self._barge(barge)

    async def _interrupt(self) -> None:
        """A key interrupts as speech does; the model, which did not hear it, is told to stop."""
        if self.book.generating:
            await self._send({"type": "response.cancel"})
        await self._barge(self.book.interrupt())

    async def _barge(self, barge: Barge) -> None:
        """Clear what plays and truncate its item at what was heard, as `barge` says."""
        port = self._port
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
        self.blips.speech_stopped(event.item_id, event.audio_end_ms)
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
            if self._asked is not None:
                self._requests[event.response.id], self._asked = self._asked, None
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
        self.blips.transcribed(event.item_id, event.transcript)
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
        await self.line.response_done(response.status == "completed")
        if calls:
            self._save()
        self._update_quiet()
        request = self._requests.pop(response.id or "", None)
        if response.status == "completed":
            self._failed_in_a_row = 0
        elif response.status == "failed":
            self._response_failed(response, request)
        elif response.status == "incomplete":
            reason = (response.status_details and response.status_details.reason) or "unknown"
            metrics.RESPONSES_INCOMPLETE.labels(reason).inc()
            log.warning(
                "voiceflow model response incomplete callSid=%s: %s; the call goes on",
                self._sid,
                reason,
            )

    def _response_failed(self, response: RealtimeResponse, request: dict[str, Any] | None) -> None:
        """A failed response is asked for again once, after a short pause, as it was asked
        (the server's VAD asked: a plain response.create); a second in a row is a model failure:
        the session is reopened with the conversation, or the fallback plays."""
        error = response.status_details.error if response.status_details else None
        code = (error and (error.code or error.type)) or "unknown"
        said = f"{code}: {error.message if error else 'no details'}"
        metrics.RESPONSES_FAILED.labels(code).inc()
        self._failed_in_a_row += 1
        if self._failed_in_a_row > 1:
            kind = "rate_limit" if code in RATE_LIMIT_ERRORS else "response_failed"
            self._unanswered = request or {"type": "response.create"}
            raise ModelFailure(kind, f"a response failed again ({said})")
        log.warning(
            "voiceflow model response failed callSid=%s (%s); asking again", self._sid, said
        )
        self._spawn(self._ask_again(request or {"type": "response.create"}))

    async def _ask_again(self, request: dict[str, Any]) -> None:
        await asyncio.sleep(RESPONSE_RETRY_S)
        await self._send(request)

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
                await self._session_once(how, since)
            except ModelFailure as exc:
                failure = exc
            except Exception as exc:  # a bug of ours, or a shape of failure not met before
                log.exception("voiceflow model session callSid=%s ended unexpectedly", self._sid)
                failure = ModelFailure("internal", f"{type(exc).__name__}: {exc}")
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

    async def _session_once(self, how: str, since: float) -> None:
        """One model session, until it fails (a ModelFailure, or anything else)."""
        self._failed_in_a_row, self._asked = 0, None
        self._requests.clear()
        self.link = await ModelLink.open(self._model(), self._session(), self.frames)
        await self._replay(how, since)
        await self._greet_when_ready()
        if self._unanswered is not None:  # the caller is owed the answer that failed
            request, self._unanswered = self._unanswered, None
            await self._send(request)
        async for event in self.link.events():
            await self._dispatch(event)

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
            if event.type not in EVENT_CLASSES:  # a server event the SDK does not know (GA)
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

    def _responding(self) -> bool:
        return self.book.current is not None

    async def _tell(self, words: str) -> None:
        """The caller's words as text (their keys): one user item, kept in the conversation."""
        item_id = _new_id()
        self.conversation.added(item_id, "user")
        if self.conversation.user_said(item_id, words):
            self._save()
        content = [{"type": "input_text", "text": words}]
        item = {"id": item_id, "type": "message", "role": "user", "content": content}
        await self._send({"type": "conversation.item.create", "item": item})

    async def _respond(self) -> None:
        await self._send({"type": "response.create"})

    async def _send(self, event: dict[str, Any]) -> None:
        if self.link is not None:
            if event["type"] == "response.create":
                self._asked = event  # asked again as it was, if its response fails
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
        self.line.quiet(self.quiet)
        if self.quiet:
            self._quiet.set()
        else:
            self._quiet.clear()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = spawn(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _input_settings(self) -> InputSettings:
        """This call's input settings: a `prepare` may have changed them; a value the class would
        refuse is logged and counted, and the class's are used."""
        try:
            return input_settings(
                self.noise_reduction, self.turn_detection, self.interrupt_response
            )
        except ValueError as exc:
            metrics.INTERNAL_ERRORS.labels("prepare").inc()
            log.error("voiceflow prepare() set %s callSid=%s; the class's apply", exc, self._sid)
            cls = type(self)
            self.noise_reduction, self.turn_detection = cls.noise_reduction, cls.turn_detection
            self.interrupt_response = cls.interrupt_response
            return input_settings(cls.noise_reduction, cls.turn_detection, cls.interrupt_response)

    def _model(self) -> str:
        return self.model or conf.realtime_model()

    def _session(self) -> dict[str, Any]:
        return session_config(
            model=self._model(),
            instructions=self.instructions + (RESUMED if self.conversation else ""),
            voice=self.voice,
            audio_input=self._input,
            tools=self._tools.definitions(),
            transcription_model=self.transcription_model,
        )

    def _publish(self) -> None:
        figures = self.book.figures
        metrics.MODEL_TURNS.inc(figures.turns)
        metrics.BARGE_INS.inc(figures.barge_ins)
        metrics.FALSE_BARGE_INS.inc(self.blips.count)
        metrics.LATE_AUDIO.inc(figures.late_audio)
        metrics.CONVERSATION_ITEMS_DROPPED.inc(self.conversation.dropped)
        self.line.publish()
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


def _route(
    event: type[Event], handler: Callable[[RealtimeAssistant, Event], Awaitable[None]]
) -> tuple[str, Handler]:
    """One row of HANDLERS: the SDK's event class and the method typed to take it."""
    return event_type(event), handler


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
