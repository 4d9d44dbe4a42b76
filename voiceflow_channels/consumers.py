"""The websocket consumer for one Twilio Media Stream: a thin adapter over `CallState` (what
arrives) and `Playback` (what the caller hears), with hooks for an assistant."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from . import conf, metrics
from .call_state import CallState
from .layer_messages import (
    AudioClear,
    AudioPlay,
    WaitEnd,
    WaitStart,
    check_audio,
    check_label,
    clean_reason,
)
from .playback import Clear, Mark, Media, Outbound, Playback, Step, Utterance
from .signature import header_signature, is_valid_signature
from .streams import STREAMS
from .twilio_events import StreamStart, clear_message, mark_message, media_message
from .wait import group_name
from .wait_state import WaitState

log = logging.getLogger("voiceflow_channels")

LAYER_TYPE_PREFIX = "voiceflow."
# A layer receive that fails (a Redis timeout under load, Redis down) is retried, backing off
# to this. A restarted Redis has lost the call's group, and waits miss the call until its retry
# re-joins it: up to this long after Redis is back. Each retry is one refused connect per call.
LAYER_RETRY_SECONDS = 0.5
LAYER_RETRY_MAX_SECONDS = 5.0

CHIME_LABEL = "chime"

# Process-wide counters: "refused_signature", "refused_draining", "refused_at_capacity",
# "layer_join_failed", "layer_leave_failed", "layer_message_ignored", "hook_errors",
# "refused_audio", "timeout_start", "timeout_idle". The same events go to `metrics`.
counters: Counter[str] = Counter()
# The idle check looks at a stream this many times per VOICEFLOW_IDLE_TIMEOUT_S: a stream is
# closed between 1 and 1.25 timeouts after its last frame, with no per-frame timer.
IDLE_CHECKS = 4


class TwilioStreamConsumer(AsyncJsonWebsocketConsumer):
    """One call's stream: each frame goes to `CallState`, outbound audio through `Playback`;
    waits and audio also come from the layer (`voiceflow_channels.wait`, `.audio`).

    Subclass it for an assistant: override the async `on_*` hooks (no-ops here), speak with
    `await self.play(mulaw, label)`, barge in with `await self.clear()`, and mount the subclass
    with `build_router(consumer=MyConsumer)`. A hook that raises is logged and counted; the
    call goes on.
    """

    call: CallState
    playback: Playback

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

    async def play(self, mulaw: bytes, label: str = "speech") -> None:
        """Queue `mulaw` (8 kHz mu-law; padded to whole 20 ms frames) as one utterance, after
        what is queued. It ends the chime at once. Past VOICEFLOW_MAX_QUEUED_AUDIO_MS it is
        refused (counted, logged); once the call has ended it does nothing."""
        check_label(label)
        audio = check_audio(mulaw)
        if self._finished:
            return
        await self._speak(label, audio, None, final=True)

    async def clear(self) -> None:
        """Barge-in: Twilio drops what it has buffered, the queue is dropped, the books close."""
        self._take(self.playback.clear())
        await self._flush()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        # Channels' own loop (await_many_dispatch) costs a task and an asyncio.wait per frame;
        # the socket is read directly here and the layer gets its own task once the call starts.
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self._layer_task: asyncio.Task | None = None
        self._chime_timer: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._finished = False
        self._outbox: deque[str] = deque()
        self._ended: deque[Utterance] = deque()
        self._flushing = False
        self._tasks: set[asyncio.Task] = set()
        self._hears = type(self).on_audio is not TwilioStreamConsumer.on_audio
        try:
            while True:
                message = await receive()
                text = message.get("text")
                if text is not None and message["type"] == "websocket.receive":
                    await self.receive(text)  # the hot path: straight to the frame handler
                else:
                    await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            self._stop_background()

    async def dispatch(self, message: dict) -> None:
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
        self.chime = conf.chime_audio()
        refusal = self._refusal()
        if refusal:
            self._finished = True
            counters["refused_signature"] += 1
            metrics.REFUSED.labels("signature").inc()
            log.warning("voiceflow refused upgrade to %s: %s", self.scope.get("path"), refusal)
            await self.close()
            return
        busy = STREAMS.refusal(conf.max_streams())
        if busy:
            self._finished = True
            counters[f"refused_{busy}"] += 1
            metrics.REFUSED.labels(busy).inc()
            log.warning(
                "voiceflow refused upgrade to %s: %s (%d live streams, VOICEFLOW_MAX_STREAMS=%d)",
                self.scope.get("path"),
                busy.replace("_", " "),
                len(STREAMS.live),
                conf.max_streams(),
            )
            await self._deny_busy()
            return
        await self.accept()
        STREAMS.add(self)
        metrics.CALLS_ACTIVE.inc()
        self._idle_seen = -1
        self._idle_checks = 0
        self._watch(conf.start_timeout_s(), self._start_timed_out)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        call = self.call
        kind = call.drop("binary") if text_data is None else call.receive_text(text_data)
        if kind == "media":
            if self._hears:
                await self._hook(self.on_audio, call.audio)
            return
        if kind == "mark":
            self._take(self.playback.on_mark(call.last_mark))
            await self._flush()
        elif kind == "dtmf":
            await self._hook(self.on_dtmf, call.last_dtmf)
        elif kind == "start":
            self._watch(conf.idle_timeout_s() / IDLE_CHECKS, self._idle_check)
            await self._joined()
            if type(self).on_start is not TwilioStreamConsumer.on_start:
                await self._hook(self.on_start, StreamStart.model_validate(call.start))
        elif kind == "stop":
            await self._finish("stop")
            await self.close()
        elif kind == "drop" and self.debug:
            log.debug("voiceflow drop callSid=%s drops=%s", call.call_sid, dict(call.drops))

    async def websocket_disconnect(self, message: dict) -> None:
        await self._finish("disconnect")
        for group in self.groups:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception as exc:  # the group expires on its own (group_expiry)
                counters["layer_leave_failed"] += 1
                metrics.LAYER_FAILURES.labels("leave").inc()
                log.warning("voiceflow could not leave %s (%s: %s)", group, type(exc).__name__, exc)
        await self.disconnect(message.get("code"))
        raise StopConsumer

    def start_wait(self, reason: str) -> None:
        """The assistant started working: enter the wait; the chime plays past the threshold."""
        wait = self.call.wait
        wait.notify_wait_start(clean_reason(reason))
        self._arm_chime()

    def end_wait(self) -> None:
        """The assistant is done: leave the wait, and the chime stops at once."""
        self._disarm_chime()
        self.call.wait.notify_wait_end()
        self._take(self.playback.clear_filler())
        self._spawn(self._flush())

    async def voiceflow_wait_start(self, message: dict) -> None:
        start = WaitStart.model_validate(message)
        if not self._finished:
            self.start_wait(start.reason)

    async def voiceflow_wait_end(self, message: dict) -> None:
        WaitEnd.model_validate(message)
        if not self._finished:
            self.end_wait()

    async def voiceflow_audio_play(self, message: dict) -> None:
        part = AudioPlay.model_validate(message)
        if self._finished:
            return
        if part.part:
            lost = self.playback.lost_parts
            step = self.playback.extend(
                part.utterance, part.audio, final=part.final, part=part.part
            )
            if self.playback.lost_parts != lost:
                metrics.LAYER_FAILURES.labels("lost_audio").inc(self.playback.lost_parts - lost)
                log.warning(
                    "voiceflow audio parts never arrived callSid=%s utterance=%s before part %d "
                    "(a channel layer over capacity drops messages: raise its capacity)",
                    self.call.call_sid,
                    part.utterance,
                    part.part,
                )
            self._take(step)
            await self._flush()
        else:
            await self._speak(part.label, part.audio, part.utterance, final=part.final)

    async def voiceflow_audio_clear(self, message: dict) -> None:
        AudioClear.model_validate(message)
        if not self._finished:
            await self.clear()

    def _refusal(self) -> str | None:
        token = conf.twilio_auth_token()
        if not token:
            return None
        signature = header_signature(self.scope.get("headers", []))
        if signature is None:
            return "missing X-Twilio-Signature"
        url = conf.public_url() + self.scope.get("path", "")
        if not is_valid_signature(token, url, signature):
            return f"X-Twilio-Signature does not match {url}"
        return None

    async def _joined(self) -> None:
        """Join the call's group (so waits from anywhere reach it), then log the start. A layer
        that fails (Redis down, its pool exhausted) costs the call its waits, never the call."""
        call = self.call
        if self.channel_layer is not None:
            try:
                self.channel_name = await self.channel_layer.new_channel()
                group = group_name(call.call_sid)
                await self.channel_layer.group_add(group, self.channel_name)
            except Exception as exc:
                counters["layer_join_failed"] += 1
                metrics.LAYER_FAILURES.labels("join").inc()
                log.warning(
                    "voiceflow could not join the layer callSid=%s (%s: %s): waits will not "
                    "reach this call",
                    call.call_sid,
                    type(exc).__name__,
                    exc,
                )
            else:
                self.groups.append(group)
                self._layer_task = asyncio.create_task(self._pump_layer())
        log.info(
            "voiceflow start callSid=%s streamSid=%s tenant=%s",
            call.call_sid,
            call.stream_sid,
            call.tenant_id or "-",
        )

    async def _pump_layer(self) -> None:
        """Hand the call's layer messages to their handlers while it lives. A failing layer is
        retried with backoff, and the call re-joins its group before it listens again: a Redis
        that restarted has forgotten the group, and no wait would reach the call."""
        failures = 0  # in a row, since the last message: they set the backoff
        rejoin = False
        while True:
            step = "join" if rejoin else "receive"
            try:
                if rejoin:
                    await self._rejoin(failures)
                    rejoin, step = False, "receive"
                message = await self.channel_layer.receive(self.channel_name)
            except Exception as exc:
                failures += 1
                rejoin = True
                if step == "join":
                    counters["layer_join_failed"] += 1
                metrics.LAYER_FAILURES.labels(step).inc()
                retry = min(LAYER_RETRY_SECONDS * 2 ** (failures - 1), LAYER_RETRY_MAX_SECONDS)
                log.warning(
                    "voiceflow layer %s failed callSid=%s (%s: %s); retrying in %.1fs",
                    step,
                    self.call.call_sid,
                    type(exc).__name__,
                    exc,
                    retry,
                )
                await asyncio.sleep(retry)
                continue
            failures = 0
            # Only our own message types: a websocket.* message on the layer is not a frame.
            kind = message.get("type")
            try:
                if not (isinstance(kind, str) and kind.startswith(LAYER_TYPE_PREFIX)):
                    raise ValueError(f"type {kind!r} is not {LAYER_TYPE_PREFIX}*")
                await self.dispatch(message)
            except ValueError as exc:  # pydantic's ValidationError included
                counters["layer_message_ignored"] += 1
                metrics.LAYER_FAILURES.labels("bad_message").inc()
                log.warning(
                    "voiceflow ignored layer message callSid=%s: %s", self.call.call_sid, exc
                )

    async def _rejoin(self, failures: int) -> None:
        """Join the call's groups again after `failures` failed layer calls (adding a member
        twice is harmless); raises what the layer raises."""
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        log.info(
            "voiceflow re-joined the layer callSid=%s after %d failures",
            self.call.call_sid,
            failures,
        )

    async def _speak(self, label: str, mulaw: bytes, key: str | None, *, final: bool) -> None:
        refused = self.playback.refused
        self._take(self.playback.play(label, mulaw, key=key, final=final))
        if self.playback.refused != refused:
            counters["refused_audio"] += 1
            log.warning(
                "voiceflow refused %d ms of %s audio callSid=%s: %d ms already queued "
                "(VOICEFLOW_MAX_QUEUED_AUDIO_MS=%d)",
                len(mulaw) // 8,
                label,
                self.call.call_sid,
                self.playback.unsettled_ms,
                self.playback.max_queued_ms,
            )
        await self._flush()

    def _take(self, step: Step) -> None:
        """Queue a playback step's messages in order (none once the call is over) and its ended
        utterances for `on_playback`; `_flush` sends and reports them."""
        if not self._finished:
            sid = self.call.stream_sid
            self._outbox.extend(_render(sid, message) for message in step.outbound)
        self._ended.extend(step.ended)

    async def _flush(self) -> None:
        """Send the outbox in order, one sender at a time, then run `on_playback` for ended
        utterances; then the chime may be due, now that nothing plays."""
        if self._flushing:
            return  # the running flush sends what was just queued, in order
        self._flushing = True
        try:
            while self._outbox or self._ended:
                if self._outbox:
                    await self.send(text_data=self._outbox.popleft())
                else:
                    u = self._ended.popleft()
                    await self._hook(self.on_playback, u.label, u.played_ms, u.cleared_ms)
        finally:
            self._flushing = False
        if not self._finished:
            self._arm_chime()

    async def _hook(self, hook: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            await hook(*args)
        except Exception:
            self.call.hook_errors += 1
            counters["hook_errors"] += 1
            log.exception(
                "voiceflow hook %s raised callSid=%s; the call goes on",
                hook.__name__,
                self.call.call_sid,
            )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _arm_chime(self) -> None:
        """Time the next chime: only while waiting and while nothing else plays."""
        delay_ms = self.call.wait.ms_until_chime()
        if delay_ms is None or self._chime_timer is not None or not self.playback.idle:
            return
        if delay_ms == 0:
            self._chime_fired()
            return
        loop = asyncio.get_running_loop()
        self._chime_timer = loop.call_later(delay_ms / 1000, self._chime_fired)

    def _chime_fired(self) -> None:
        self._chime_timer = None
        if self.playback.idle and self.call.wait.record_chime_if_due():
            self._take(self.playback.play(CHIME_LABEL, self.chime, filler=True))
            self._spawn(self._flush())
        else:
            self._arm_chime()

    def _disarm_chime(self) -> None:
        if self._chime_timer is not None:
            self._chime_timer.cancel()
            self._chime_timer = None

    async def drain_close(self) -> None:
        """The process drains and this call outlived VOICEFLOW_DRAIN_SECONDS: end it cleanly."""
        await self._finish("drained")
        await self.close()

    async def _finish(self, how: str) -> None:
        """Once per call, `how` it ended (stop, disconnect, timeout, drained): stop timers, close
        the books (`on_playback`, then `on_stop`), publish its figures and log its one summary
        line (none for a stream that never started)."""
        if self._finished or not hasattr(self, "call"):
            return
        self._finished = True
        STREAMS.discard(self)
        self._outbox.clear()  # nothing is sent after stop: Twilio would not play it
        self._disarm_chime()
        if self._watchdog is not None:
            self._watchdog.cancel()
        self.call.wait.notify_wait_end()
        self._take(self.playback.end())
        while self._ended:
            u = self._ended.popleft()
            await self._hook(self.on_playback, u.label, u.played_ms, u.cleared_ms)
        call = self.call
        if call.started:
            await self._hook(self.on_stop)
        _publish(call, how)
        if call.started:
            said = "disconnect without stop" if how == "disconnect" else how
            log.info("voiceflow call ended (%s) %s", said, call.summary())

    async def _deny_busy(self) -> None:
        """Refuse the upgrade with a 503 where the server can say so (the ASGI websocket denial
        response extension, e.g. uvicorn); daphne can only refuse with a 403."""
        if "websocket.http.response" in self.scope.get("extensions", {}):
            start = {"type": "websocket.http.response.start", "status": 503, "headers": []}
            await self.base_send(start)
            await self.base_send({"type": "websocket.http.response.body", "body": b"busy\n"})
        else:
            await self.close()

    def _watch(self, seconds: float, check: Callable[[], None]) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = asyncio.get_running_loop().call_later(seconds, check)

    def _start_timed_out(self) -> None:
        self._time_out(
            "start", f"no start within VOICEFLOW_START_TIMEOUT_S={conf.start_timeout_s()}"
        )

    def _idle_check(self) -> None:
        """No per-frame timer: every quarter timeout, has anything arrived since the last look?"""
        seen = self.call.received
        self._idle_checks = self._idle_checks + 1 if seen == self._idle_seen else 0
        self._idle_seen = seen
        if self._idle_checks >= IDLE_CHECKS:
            self._time_out("idle", f"no frame for VOICEFLOW_IDLE_TIMEOUT_S={conf.idle_timeout_s()}")
        else:
            self._watch(conf.idle_timeout_s() / IDLE_CHECKS, self._idle_check)

    def _time_out(self, kind: str, why: str) -> None:
        self._watchdog = None
        counters[f"timeout_{kind}"] += 1
        log.info("voiceflow closed stream callSid=%s: %s", self.call.call_sid or "-", why)
        self._spawn(self._close_timed_out())

    async def _close_timed_out(self) -> None:
        await self._finish("timeout")
        await self.close()

    def _stop_background(self) -> None:
        self._disarm_chime()
        if self._watchdog is not None:
            self._watchdog.cancel()
        for task in (self._layer_task, *self._tasks):
            if task is not None:
                task.cancel()


def _publish(call: CallState, how: str) -> None:
    """A call's figures into the process metrics, once, at its end."""
    metrics.CALLS_ACTIVE.dec()
    metrics.CALLS_ENDED.labels(how).inc()
    metrics.MEDIA_FRAMES.inc(call.frames)
    for reason, count in call.drops.items():
        metrics.DROPS.labels(reason).inc(count)
    metrics.WAITS.inc(call.wait.waits_started)
    metrics.CHIMES.inc(call.wait.chimes_due)
    playback = call.playback
    metrics.AUDIO_PLAYED_MS.inc(playback.played_ms)
    metrics.AUDIO_CLEARED_MS.inc(playback.cleared_ms)
    metrics.AUDIO_REFUSED.inc(playback.refused)
    metrics.HOOK_ERRORS.inc(call.hook_errors)
    p99 = call.lag.quantile(0.99)
    if p99 is not None:
        metrics.CALL_LAG_P99.observe(p99)


def _render(stream_sid: str, message: Outbound) -> str:
    if isinstance(message, Media):
        return media_message(stream_sid, message.audio)
    if isinstance(message, Mark):
        return mark_message(stream_sid, message.name)
    assert isinstance(message, Clear)
    return clear_message(stream_sid)
