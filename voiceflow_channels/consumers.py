"""The websocket consumer for one Twilio Media Stream: the hooks a consumer subclass overrides,
the port an assistant is bound through (`CallPort`), and the wiring of each frame to `CallState`
(what arrives), the `Outbox` (what the caller hears), the `CallLayer` (messages from any
process) and the `Watchdog` (timeouts)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from asgiref.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    WebSocketDisconnectEvent,
    WebSocketScope,
)
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from . import call_control, conf, metrics
from .admission import deny_with_503, signature_refusal
from .call_ending import STALL_SECONDS, CallEnding
from .call_layer import CallLayer
from .call_port import Assistant, CallInfo
from .call_state import CallState
from .destinations import check_destination
from .layer_messages import (
    AudioClear,
    AudioPlay,
    CallHangup,
    CallTransfer,
    LayerMessage,
    WaitEnd,
    WaitStart,
    check_audio,
    check_key,
    check_label,
    clean_reason,
)
from .outbox import Outbox
from .playback import Playback, Utterance
from .records import writer
from .records.finished import FinishedLeg, figures_of
from .records.tape import Tape
from .records.timeline import Timeline
from .streams import STREAMS
from .twilio_events import StreamStart, mask_phone
from .wait_state import WaitState
from .watchdog import Watchdog

log = logging.getLogger("voiceflow_channels")


# Channels ships no type hints: its consumer is Any to mypy.
class TwilioStreamConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """One call's stream: each frame goes to `CallState`, outbound audio through `Playback`;
    waits and audio also come from the layer (`voiceflow_channels.wait`, `.audio`).

    Subclass it for an assistant: override the async `on_*` hooks (no-ops here), speak with
    `await self.play(mulaw, label)` (or stream it as it comes: `play(first, label, key=k,
    final=False)`, then `play_more(k, more)`), barge in with `await self.clear()`, and mount
    the subclass with `build_router(consumer=MyConsumer)`. A hook that raises is logged and
    counted; the call goes on.
    """

    call: CallState
    playback: Playback
    outbox: Outbox

    def __init__(self, *, assistant: type[Assistant] | None = None) -> None:
        super().__init__()
        self.assistant_class = assistant
        self.assistant: Assistant | None = None

    async def on_start(self, start: StreamStart) -> None:
        """The stream started: who is calling (`start.callSid`, `start.tenant_id`, ...)."""

    async def on_audio(self, mulaw: bytes) -> None:
        """One inbound frame of the caller's audio (20 ms of 8 kHz mu-law). Not overridden, it
        costs nothing per frame."""

    async def on_dtmf(self, digit: str) -> None:
        """The caller pressed a key: 0-9, *, #, A-D."""

    async def on_playback(self, label: str, played_ms: int, cleared_ms: int) -> None:
        """An utterance is over: `played_ms` confirmed heard by Twilio's marks, `cleared_ms`
        dropped by a clear (or by the end of the call). For a truncate (e.g. OpenAI Realtime's
        `conversation.item.truncate`), `played_ms` is the audio_end_ms."""

    async def on_stop(self) -> None:
        """The stream ended (Twilio's `stop`, or a disconnect); after the last `on_playback`."""

    def summary_fields(self) -> str:
        """More `name=value` fields for the call's summary line (e.g. an assistant's figures)."""
        return ""

    async def play(
        self, mulaw: bytes, label: str = "speech", *, key: str | None = None, final: bool = True
    ) -> None:
        """Queue `mulaw` (8 kHz mu-law; its end padded to a whole 20 ms frame) as one utterance,
        after what is queued. It ends the chime at once. Past VOICEFLOW_MAX_QUEUED_AUDIO_MS it is
        refused (counted, logged); once the call has ended it does nothing. With `final=False`
        the utterance named `key` stays open for `play_more`, and what follows waits for it."""
        check_label(label)
        audio = check_audio(mulaw)
        if key is not None:
            check_key(key)
        elif not final:
            raise ValueError("an open utterance (final=False) needs a key for play_more")
        if self._finished:
            return
        await self.outbox.play(label, audio, key, final=final)

    async def play_more(self, key: str, mulaw: bytes, *, final: bool = False) -> None:
        """More of the open utterance `key` (any size: a partial frame waits for the next part,
        never padded mid-utterance); `final=True` ends it (`b""` will do). Audio for an
        utterance that was cleared, refused or has ended is ignored and counted (`late_audio=`),
        and one with no new part for VOICEFLOW_PART_TIMEOUT_MS is ended with what it has."""
        check_key(key)
        audio = check_audio(mulaw)
        if self._finished:
            return
        await self.outbox.extend(key, audio, final=final)

    async def clear(self) -> None:
        """Barge-in: Twilio drops what it has buffered, the queue is dropped, the books close."""
        self.outbox.take(self.playback.clear())
        await self.outbox.flush()
        await self._end_if_heard()

    async def hangup(self) -> None:
        """Hang up once the caller has heard what is queued (its last mark echoed): the stream
        closes and Twilio's `<Connect action>` (/twilio/voice/after) answers `<Hangup/>`."""
        await self._end_call("hangup", call_control.arecord_hangup)

    async def transfer(self, to: str) -> None:
        """Like `hangup`, then Twilio dials `to`: an E.164 number or a `sip:` URI on
        VOICEFLOW_TRANSFER_ALLOWLIST, checked now: refused, it is logged and counted, a
        ValueError is raised, and the call goes on."""
        try:
            to = check_destination(to, conf.transfer_allowlist())
        except ValueError as exc:
            metrics.CALL_CONTROL_FAILURES.labels("transfer_refused").inc()
            log.warning("voiceflow refused a transfer callSid=%s: %s", self.call.call_sid, exc)
            raise
        self.timeline.add("transfer", label=to)
        await self._end_call("transfer", functools.partial(call_control.arecord_transfer, to=to))

    # The port an assistant is bound through (CallPort); play, play_more, clear, start_wait,
    # end_wait, hangup and transfer are the methods above and below.

    @property
    def info(self) -> CallInfo:
        call = self.call
        start = call.start or {}
        return CallInfo(
            call.call_sid or "",
            call.stream_sid or "",
            call.tenant_id,
            call.from_number,
            dict(start.get("customParameters") or {}),
        )

    @property
    def waiting_for(self) -> str | None:
        wait = self.call.wait
        return wait.reason if wait.waiting_audio_active else None

    @property
    def playing(self) -> bool:
        utterance = self.playback.playing
        return utterance is not None and not utterance.filler

    def heard_ms(self, key: str) -> int:
        return self.playback.heard_ms(key)

    def late_audio(self) -> None:
        self.playback.late_audio += 1

    async def __call__(
        self, scope: WebSocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        # Channels' own loop (await_many_dispatch) costs a task and an asyncio.wait per frame;
        # the socket is read directly here and the layer gets its own task once the call starts.
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.layer: CallLayer | None = None
        self._finished = False
        self.ending: CallEnding | None = None
        self._hears = type(self).on_audio is not TwilioStreamConsumer.on_audio
        try:
            while True:
                message = await receive()
                if (
                    message["type"] == "websocket.receive"
                    and (text := message.get("text")) is not None
                ):
                    await self.receive(text)  # the hot path: straight to the frame handler
                else:
                    await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            if hasattr(self, "call"):
                self.outbox.cancel()
                self.watchdog.cancel()
            if self.layer is not None:
                self.layer.cancel()
            self.assistant = None  # it holds the port's methods: no cycle outlives the call

    async def dispatch(self, message: Mapping[str, object]) -> None:
        # This consumer never touches the DB: no close_old_connections thread hop per message.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self.debug = conf.vozlia_debug()
        wait = WaitState(
            conf.voice_wait_sound_trigger_ms(),
            lambda: int(loop.time() * 1000),
            repeat_ms=conf.voice_wait_sound_repeat_ms(),
            debug=self.debug,
        )
        self.playback = Playback(
            conf.playback_lead_ms(), conf.mark_every_ms(), conf.max_queued_audio_ms()
        )
        self.call = CallState(wait, conf.limits(), self.playback, loop.time)
        self.outbox = Outbox(
            self.call, conf.chime_audio(), self._send_text, self._report, conf.part_timeout_ms()
        )
        self.watchdog = Watchdog(self.call, self._time_out)
        self.timeline = Timeline(loop.time)  # the call record's events (records/)
        self.began = datetime.now(UTC)
        if conf.call_records() and conf.record_audio():
            self.outbox.tape = Tape(loop.time)
        refusal = signature_refusal(self.scope)
        if refusal:
            self._finished = True
            metrics.REFUSED.labels("signature").inc()
            log.warning("voiceflow refused upgrade to %s: %s", self.scope.get("path"), refusal)
            await self.close()
            return
        busy = STREAMS.refusal(conf.max_streams())
        if busy:
            self._finished = True
            metrics.REFUSED.labels(busy).inc()
            log.warning(
                "voiceflow refused upgrade to %s: %s (%d live streams, VOICEFLOW_MAX_STREAMS=%d)",
                self.scope.get("path"),
                busy.replace("_", " "),
                len(STREAMS.live),
                conf.max_streams(),
            )
            if not await deny_with_503(self.scope, self.base_send):
                await self.close()  # daphne can only refuse with a 403
            return
        await self.accept()
        STREAMS.add(self)
        metrics.CALLS_ACTIVE.inc()
        self.watchdog.await_start()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        call = self.call
        kind = call.drop("binary") if text_data is None else call.receive_text(text_data)
        if kind == "media":
            if self.outbox.tape is not None:
                self.outbox.tape.said(call.audio)
            if self.assistant is not None:
                self.assistant.hear(call.audio_b64)
            if self._hears:
                await self._hook(self.on_audio, call.audio)
            return
        if kind == "mark":
            self.outbox.take(self.playback.on_mark(call.last_mark or ""))
            await self.outbox.flush()
            await self._end_if_heard()
        elif kind == "dtmf":
            if self.assistant is not None:
                await self.assistant.pressed(call.last_dtmf or "")
            await self._hook(self.on_dtmf, call.last_dtmf)
        elif kind == "start":
            self.watchdog.watch_idle()
            await self._join_layer()
            log.info(
                "voiceflow start callSid=%s streamSid=%s tenant=%s",
                call.call_sid,
                call.stream_sid,
                call.tenant_id or "-",
            )
            if type(self).on_start is not TwilioStreamConsumer.on_start:
                await self._hook(self.on_start, StreamStart.model_validate(call.start))
            if self.assistant_class is not None and not self._finished:
                self.assistant = self.assistant_class()
                await self.assistant.attach(self)
        elif kind == "stop":
            await self._finish("stop")
            await self.close()
        elif kind == "drop" and self.debug:
            log.debug("voiceflow drop callSid=%s drops=%s", call.call_sid, dict(call.drops))

    async def websocket_disconnect(self, message: WebSocketDisconnectEvent) -> None:
        await self._finish("disconnect")
        if self.layer is not None:
            await self.layer.leave()
        await self.disconnect(message.get("code"))
        raise StopConsumer

    def start_wait(self, reason: str) -> None:
        """The assistant started working: enter the wait; the chime plays past the threshold."""
        self.call.wait.notify_wait_start(clean_reason(reason))
        self.outbox.arm_chime()

    def end_wait(self) -> None:
        """The assistant is done: leave the wait, and the chime stops at once."""
        self.outbox.disarm_chime()
        self.call.wait.notify_wait_end()
        self.outbox.take(self.playback.clear_filler())
        self.outbox.flush_soon()

    async def voiceflow_wait_start(self, message: WaitStart) -> None:
        self.start_wait(message.reason)

    async def voiceflow_wait_end(self, message: WaitEnd) -> None:
        self.end_wait()

    async def voiceflow_audio_play(self, message: AudioPlay) -> None:
        if message.part:
            await self.outbox.extend(
                message.utterance, message.audio, final=message.final, part=message.part
            )
        else:
            await self.outbox.play(
                message.label, message.audio, message.utterance, final=message.final
            )

    async def voiceflow_audio_clear(self, message: AudioClear) -> None:
        await self.clear()

    async def voiceflow_call_hangup(self, message: CallHangup) -> None:
        await self.hangup()

    async def voiceflow_call_transfer(self, message: CallTransfer) -> None:
        # The sender's process checked it against its own settings; this one's may differ.
        with contextlib.suppress(ValueError):  # logged and counted by transfer()
            await self.transfer(message.to)

    async def hand_over(self) -> None:
        """The process drains: an assistant's call closes at its next quiet moment, its
        conversation kept, and Twilio's `<Connect action>` redirects it to a live process that
        carries the conversation on. A plain consumer's call is left to end on its own."""
        if self.assistant is None or self._finished:
            return
        await self.assistant.quiet_moment()
        if self._finished:
            return
        metrics.CALLS_HANDED_OVER.inc()
        log.info("voiceflow hands callSid=%s over at a quiet moment", self.call.call_sid)
        # The drain stops waiting (and cancels this) as soon as the stream leaves STREAMS, which
        # is early in _finish: the call must still end whole and its socket close.
        await asyncio.shield(self._end_handed_over())

    async def _end_handed_over(self) -> None:
        await self._finish("handed_over")
        await self.close()

    async def drain_close(self) -> None:
        """The process drains and this call outlived VOICEFLOW_DRAIN_SECONDS: end it cleanly."""
        await self._finish("drained")
        await self.close()

    async def _end_call(self, how: str, record: Callable[[str], Awaitable[None]]) -> None:
        """End the call `how` once everything queued has been heard: the wait ends first (the
        chime is not worth waiting for), then `record(call_sid)` writes the instruction that
        /twilio/voice/after answers, then the stream closes."""
        if self._finished or self.ending is not None:
            log.info(
                "voiceflow %s ignored callSid=%s: the call is already ending",
                how,
                self.call.call_sid,
            )
            return
        self.ending = CallEnding(how, record, self.playback, self._end_stalled)
        if self.call.wait.waiting_audio_active:
            self.end_wait()
            await self.outbox.flush()  # the chime's clear goes out before the close
        await self._end_if_heard()

    async def _end_if_heard(self) -> None:
        if self.ending is not None and self.ending.heard() and not self._finished:
            await self._end_now()

    def _end_stalled(self) -> None:
        log.warning(
            "voiceflow ends callSid=%s (%s) with %d ms unheard: no mark echo for %.0f s",
            self.call.call_sid,
            self.ending.how if self.ending else "-",
            self.playback.unsettled_ms,
            STALL_SECONDS,
        )
        self.outbox.spawn(self._end_now())

    async def _end_now(self) -> None:
        ending = self.ending
        if ending is None or not ending.start():
            return
        try:
            await ending.record(self.call.call_sid or "")
        except Exception:
            metrics.CALL_CONTROL_FAILURES.labels("cache").inc()
            log.exception(
                "voiceflow could not record the %s of callSid=%s in the call-control cache "
                "(VOICEFLOW_CALL_CONTROL_CACHE): Twilio's action will find no instruction",
                ending.how,
                self.call.call_sid,
            )
        await self._finish(ending.how)
        await self.close()

    async def _join_layer(self) -> None:
        if self.channel_layer is None:
            return
        layer = CallLayer(self.channel_layer, self.call.call_sid or "", self._layer_message)
        if await layer.join():
            self.layer = layer
            self.channel_name = layer.channel_name

    async def _layer_message(self, message: LayerMessage) -> None:
        """A parsed message from the call's group, to the handler named after its type (as
        Channels names them: `voiceflow.wait.start` -> `voiceflow_wait_start`)."""
        if not self._finished:
            await getattr(self, get_handler_name({"type": message.type}))(message)

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def _report(self, utterance: Utterance) -> None:
        self.timeline.played(
            utterance.label, utterance.played_ms, utterance.cleared_ms, chime=utterance.filler
        )
        if self.assistant is not None:
            self.assistant.utterance_ended(utterance.key, utterance.played_ms, utterance.cleared_ms)
        await self._hook(
            self.on_playback, utterance.label, utterance.played_ms, utterance.cleared_ms
        )

    async def _hook(self, hook: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            await hook(*args)
        except Exception:
            self.call.hook_errors += 1
            log.exception(
                "voiceflow hook %s raised callSid=%s; the call goes on",
                hook.__name__,
                self.call.call_sid,
            )

    async def _finish(self, how: str) -> None:
        """Once per call, `how` it ended (stop, disconnect, timeout, drained): stop timers, close
        the books (`on_playback`, then `on_stop`), publish its figures and log its one summary
        line (none for a stream that never started)."""
        if self._finished or not hasattr(self, "call"):
            return
        self._finished = True
        STREAMS.discard(self)
        self.watchdog.cancel()
        if self.ending is not None:
            self.ending.cancel()
        self.call.wait.notify_wait_end()
        await self.outbox.end()
        call = self.call
        if self.assistant is not None:
            await self.assistant.detach()
        if call.started:
            await self._hook(self.on_stop)
        metrics.publish_call(call, how)
        if call.started:
            said = "disconnect without stop" if how == "disconnect" else how
            figures = self.assistant.summary() if self.assistant is not None else ""
            extra = " ".join(filter(None, (self.summary_fields(), figures)))
            line = call.summary() + (extra and f" {extra}")
            log.info("voiceflow call ended (%s) %s", said, line)
            if conf.call_records():
                writer.write_soon(self._finished_leg(how, line))

    def _finished_leg(self, how: str, summary: str) -> FinishedLeg:
        """This leg of the call for its record (records/): written after the call, off the
        loop."""
        call, timeline = self.call, self.timeline
        timeline.end(how)
        caller = call.from_number
        assistant = self.assistant
        transcript = []
        if assistant is not None and conf.record_transcripts():
            transcript = assistant.transcript()
        return FinishedLeg(
            call.call_sid or "",
            call.stream_sid or "",
            call.tenant_id,
            caller if conf.record_caller_number() or not caller else mask_phone(caller),
            self.began,
            datetime.now(UTC),
            how,
            figures_of(summary),
            timeline.saved(),
            timeline.dropped,
            transcript,
            call.to_number,
            self.outbox.tape,
        )

    def _time_out(self, kind: str, why: str) -> None:
        metrics.TIMEOUTS.labels(kind).inc()
        log.info("voiceflow closed stream callSid=%s: %s", self.call.call_sid or "-", why)
        self.outbox.spawn(self._close_timed_out())

    async def _close_timed_out(self) -> None:
        await self._finish("timeout")
        await self.close()
