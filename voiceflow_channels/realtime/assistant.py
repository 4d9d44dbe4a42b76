"""`RealtimeAssistant`: a Twilio stream with OpenAI's Realtime model behind it. The consumer
subclass a user subclasses; thin over the SDK (`link`), with the decisions in the conversation
book (`book`) and the session's shape in `session`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from openai.types.realtime import RealtimeServerEvent

from .. import conf, metrics
from ..consumers import TwilioStreamConsumer
from ..destinations import check_destination
from ..twilio_events import StreamStart
from .book import ConversationBook, Delta, FunctionCall
from .call_tools import CallTools
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


class RealtimeAssistant(TwilioStreamConsumer):
    """A phone assistant: set `instructions` (and `voice`, `greeting`, `tools`...), mount it
    with `build_router(consumer=MyAssistant)`. The caller's mu-law goes to the model as is, the
    model's audio comes back mark-clocked; a barge-in clears it at once and truncates the item
    at what the caller heard; tools run while the chime plays; failures fall back to a short
    audio, then a hang-up (or a transfer), never dead air. Hooks: `on_transcript(role, text)`."""

    instructions: ClassVar[str] = "You are a helpful assistant on a phone call. Keep it short."
    voice: ClassVar[str] = "marin"
    model: ClassVar[str | None] = None  # None: VOICEFLOW_REALTIME_MODEL
    turn_detection: ClassVar[TurnDetection] = "server_vad"
    greeting: ClassVar[str | None] = None  # what the assistant says first, as an instruction
    tools: ClassVar[Sequence[Callable[..., Any]]] = ()
    end_call: ClassVar[bool] = False  # offer the model an end_call tool (hang up after goodbye)
    transfers: ClassVar[Mapping[str, str]] = {}  # name -> destination: a transfer_call tool
    fallback: ClassVar[str | None] = None  # after a failure: None hangs up, a name transfers
    transcription_model: ClassVar[str | None] = None  # e.g. "gpt-4o-mini-transcribe"

    async def on_transcript(self, role: str, text: str) -> None:
        """A finished transcript: role "user" (with a transcription_model) or "assistant"."""

    async def connect(self) -> None:
        await super().connect()
        if self._finished:
            return
        # Neither holds the consumer (a cycle would wait for the collector: see Outbox).
        self.book = ConversationBook(self.playback.heard_ms, asyncio.get_running_loop().time)
        self.link: ModelLink | None = None
        self.frames = Frames()
        self._failed = False
        self._last_error = ""  # the last error the model sent, if a close follows it
        self._greet = self.greeting is not None
        self._tools = CallTools(Toolbox(*self.tools))
        self.outbox.spawn(self._converse())

    async def on_start(self, start: StreamStart) -> None:
        await self._greet_when_ready()

    async def on_audio(self, mulaw: bytes) -> None:
        self.frames.put(self.call.audio_b64)

    async def on_playback(self, label: str, played_ms: int, cleared_ms: int) -> None:
        """Subclasses that override it call super(): the book follows what still plays."""
        self.book.utterance_ended(label)

    async def on_stop(self) -> None:
        if self.link is not None:
            await self.link.close()
        self._publish()

    def summary_fields(self) -> str:
        return f"{self.book.summary()} model_audio_dropped={self.frames.dropped}"

    # The model's events, each to the method named after its type (as Channels names its
    # handlers): `response.output_audio.delta` -> `realtime_response_output_audio_delta`.

    async def realtime_session_updated(self, event: Any) -> None:
        if self.call.wait.reason == "reconnect":
            self.end_wait()

    async def realtime_input_audio_buffer_speech_started(self, event: Any) -> None:
        barge = self.book.speech_started()
        if not barge.clear:
            return
        await self.clear()
        if barge.item_id is not None and self.link is not None:
            await self.link.send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": barge.item_id,
                    "content_index": 0,
                    "audio_end_ms": barge.audio_end_ms,
                }
            )

    async def realtime_input_audio_buffer_speech_stopped(self, event: Any) -> None:
        self.book.speech_stopped()

    async def realtime_response_created(self, event: Any) -> None:
        self.book.response_created(event.response.id)

    async def realtime_response_output_audio_delta(self, event: Any) -> None:
        try:
            audio = base64.b64decode(event.delta, validate=True)
        except (binascii.Error, ValueError, TypeError):
            metrics.MODEL_ERRORS.labels("bad_audio_delta").inc()
            return
        kind = self.book.audio_delta(event.response_id, event.item_id, len(audio))
        if kind is Delta.DROP:
            self.playback.late_audio += 1  # the call's late_audio=, as a cleared part's
            return
        if kind is Delta.MORE:
            await self.play_more(event.item_id, audio)
            return
        if self.book.answer_started():
            self.end_wait()  # the answer speaks: the chime stops at once
        await self.play(audio, event.item_id, key=event.item_id, final=False)

    async def realtime_response_output_audio_done(self, event: Any) -> None:
        if self.book.audio_done(event.item_id):
            await self.play_more(event.item_id, b"", final=True)

    async def realtime_response_output_audio_transcript_done(self, event: Any) -> None:
        await self._transcript("assistant", event.transcript)

    async def realtime_conversation_item_input_audio_transcription_completed(
        self, event: Any
    ) -> None:
        await self._transcript("user", event.transcript)

    async def realtime_response_done(self, event: Any) -> None:
        response = event.response
        for item_id in self.book.still_open(response.id):  # its utterances end with it
            await self.play_more(item_id, b"", final=True)
        calls = [
            FunctionCall(item.call_id, item.name, item.arguments or "{}")
            for item in response.output or ()
            if item.type == "function_call"
        ]
        if self.book.response_done(response.id, response.status or "", calls):
            self.outbox.spawn(self._tools.run(self, calls))

    async def realtime_error(self, event: Any) -> None:
        error = event.error
        code = error.code or error.type or "unknown"
        if code in RATE_LIMIT_ERRORS:
            raise ModelFailure("rate_limit", f"{code}: {error.message}")
        metrics.MODEL_ERRORS.labels(code).inc()
        if code == SESSION_EXPIRED:
            return
        if code in HARMLESS_ERRORS:
            if self.debug:
                log.debug("voiceflow model callSid=%s: %s (harmless)", self.call.call_sid, code)
            return
        self._last_error = f"{code}: {error.message}"
        log.warning(
            "voiceflow model error callSid=%s: %s %s; the call goes on",
            self.call.call_sid,
            code,
            error.message,
        )

    async def _converse(self) -> None:
        """The call's model session: opened now, reopened once at the session cap (the caller
        hears a short wait), and on any other failure, the fallback."""
        reconnected = False
        while not self._finished:
            try:
                self.link = await ModelLink.open(self._model(), self._session(), self.frames)
                await self._greet_when_ready()
                async for event in self.link.events():
                    await self._dispatch(event)
            except ModelFailure as failure:
                if self._finished:
                    return  # the call ended, and closed the session itself
                for item_id in self.book.still_open():  # no more of them will come
                    await self.play_more(item_id, b"", final=True)
                if failure.kind == "closed" and self._last_error:  # the error ended it
                    failure = ModelFailure("session_error", f"{self._last_error}; {failure.reason}")
                metrics.MODEL_FAILURES.labels(failure.kind).inc()
                if self.link is not None:
                    await self.link.close()
                    self.link = None
                if failure.kind == "session_cap" and not reconnected and not self._finished:
                    reconnected = True
                    log.info(
                        "voiceflow model callSid=%s: %s; reconnecting",
                        self.call.call_sid,
                        failure.reason,
                    )
                    self.start_wait("reconnect")
                    continue
                await self._fall_back(failure)
                return

    async def _dispatch(self, event: RealtimeServerEvent) -> None:
        handler = getattr(self, "realtime_" + event.type.replace(".", "_"), None)
        if handler is None:
            return
        try:
            await handler(event)
        except ModelFailure:
            raise
        except Exception:
            metrics.INTERNAL_ERRORS.labels("realtime_handler").inc()
            log.exception(
                "voiceflow handler for the model's %s raised callSid=%s; the call goes on",
                event.type,
                self.call.call_sid,
            )

    async def _fall_back(self, failure: ModelFailure) -> None:
        """Never dead air: a short audio, then a hang-up, or a transfer to `fallback`."""
        if self._failed or self._finished:
            return
        self._failed = True
        log.warning(
            "voiceflow model failed callSid=%s (%s): %s; falling back to %s",
            self.call.call_sid,
            failure.kind,
            failure.reason,
            "a hang-up" if self.fallback is None else f"a transfer to {self.fallback}",
        )
        self.end_wait()
        await self.clear()
        await self.play(fallback_audio(), "fallback")
        to = self.transfers.get(self.fallback) if self.fallback is not None else None
        if to is not None:
            try:
                to = check_destination(to, conf.transfer_allowlist())
            except ValueError as exc:
                log.warning(
                    "voiceflow fallback transfer refused callSid=%s: %s", self.call.call_sid, exc
                )
                to = None
        if to is None:
            await self.hangup()
        else:
            await self.transfer(to)

    async def _greet_when_ready(self) -> None:
        """The greeting goes once the stream has started (its audio needs the streamSid) and
        the model is connected, whichever comes last."""
        if self._greet and self.link is not None and self.call.started:
            self._greet = False
            instruction = f"Greet the caller, saying: {self.greeting}"
            await self.link.send(
                {"type": "response.create", "response": {"instructions": instruction}}
            )

    async def _transcript(self, role: str, text: str | None) -> None:
        if not text:
            return
        if self.debug:
            log.debug("voiceflow transcript callSid=%s %s: %s", self.call.call_sid, role, text)
        await self._hook(self.on_transcript, role, text)

    def _model(self) -> str:
        return self.model or conf.realtime_model()

    def _session(self) -> dict[str, Any]:
        return session_config(
            model=self._model(),
            instructions=self.instructions,
            voice=self.voice,
            turn_detection=self.turn_detection,
            tools=self._tools.definitions(self),
            transcription_model=self.transcription_model,
        )

    def _publish(self) -> None:
        figures = self.book.figures
        metrics.MODEL_TURNS.inc(figures.turns)
        metrics.BARGE_INS.inc(figures.barge_ins)
        metrics.LATE_AUDIO.inc(figures.late_audio)
        metrics.TOOLS_RUN.labels("ok").inc(figures.tools_run - figures.tools_failed)
        metrics.TOOLS_RUN.labels("failed").inc(figures.tools_failed)
        for ms in figures.response_ms:
            metrics.RESPONSE_LATENCY.observe(ms)
        for ms in figures.tool_ms:
            metrics.TOOL_DURATION.observe(ms)
