"""The websocket consumer for one Twilio Media Stream: a thin adapter over `CallState`."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from . import conf
from .call_state import CallState
from .signature import header_signature, is_valid_signature
from .wait import clean_reason, group_name
from .wait_state import WaitState

log = logging.getLogger("voiceflow_channels")

LAYER_TYPE_PREFIX = "voiceflow."
# A layer receive that fails (a Redis timeout under load) is retried, backing off to this.
LAYER_RETRY_SECONDS = 0.5
LAYER_RETRY_MAX_SECONDS = 30.0

# Process-wide counters: "refused_signature", "layer_join_failed", "layer_leave_failed".
counters: Counter[str] = Counter()


class TwilioStreamConsumer(AsyncJsonWebsocketConsumer):
    """Receives one call's stream: each frame goes to `CallState`; waits come from the layer."""

    call: CallState

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        # Channels' own loop (await_many_dispatch) costs a task and an asyncio.wait per frame;
        # the socket is read directly here and the layer gets its own task once the call starts.
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self._layer_task: asyncio.Task | None = None
        self._chime_timer: asyncio.TimerHandle | None = None
        self._finished = False
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
        self.debug = conf.debug()
        wait = WaitState(conf.wait_trigger_ms(), lambda: int(loop.time() * 1000), debug=self.debug)
        self.call = CallState(wait, conf.limits())
        refusal = self._refusal()
        if refusal:
            self._finished = True
            counters["refused_signature"] += 1
            log.warning("voiceflow refused upgrade to %s: %s", self.scope.get("path"), refusal)
            await self.close()
            return
        await self.accept()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        call = self.call
        kind = call.drop("binary") if text_data is None else call.receive_text(text_data)
        if kind == "media":
            return
        if kind == "start":
            await self._joined()
        elif kind == "stop":
            self._finish("stop")
            await self.close()
        elif kind == "drop" and self.debug:
            log.debug("voiceflow drop callSid=%s drops=%s", call.call_sid, dict(call.drops))

    async def websocket_disconnect(self, message: dict) -> None:
        self._finish("disconnect without stop")
        for group in self.groups:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception as exc:  # the group expires on its own (group_expiry)
                counters["layer_leave_failed"] += 1
                log.warning("voiceflow could not leave %s (%s: %s)", group, type(exc).__name__, exc)
        await self.disconnect(message.get("code"))
        raise StopConsumer

    def start_wait(self, reason: str) -> None:
        """The assistant started working: enter the wait, and arm the chime timer."""
        wait = self.call.wait
        wait.notify_wait_start(clean_reason(reason))
        self._arm_chime()

    def end_wait(self) -> None:
        """The assistant is done: leave the wait and disarm the chime timer."""
        self._disarm_chime()
        self.call.wait.notify_wait_end()

    async def voiceflow_wait_start(self, message: dict) -> None:
        if not self._finished:
            self.start_wait(message.get("reason"))

    async def voiceflow_wait_end(self, message: dict) -> None:
        if not self._finished:
            self.end_wait()

    def _refusal(self) -> str | None:
        token = conf.auth_token()
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
        failures = 0
        while True:
            try:
                message = await self.channel_layer.receive(self.channel_name)
            except Exception as exc:
                failures += 1
                retry = min(LAYER_RETRY_SECONDS * 2 ** (failures - 1), LAYER_RETRY_MAX_SECONDS)
                log.warning(
                    "voiceflow layer receive failed callSid=%s (%s: %s); retrying in %.1fs",
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
            except ValueError as exc:
                log.warning(
                    "voiceflow ignored layer message callSid=%s: %s", self.call.call_sid, exc
                )

    def _arm_chime(self) -> None:
        wait = self.call.wait
        delay_ms = wait.ms_until_chime()
        if delay_ms is None or wait.chime_recorded or self._chime_timer is not None:
            return
        if delay_ms == 0:
            wait.record_chime_if_due()
            return
        loop = asyncio.get_running_loop()
        self._chime_timer = loop.call_later(delay_ms / 1000, self._chime_fired)

    def _chime_fired(self) -> None:
        self._chime_timer = None
        self._arm_chime()

    def _disarm_chime(self) -> None:
        if self._chime_timer is not None:
            self._chime_timer.cancel()
            self._chime_timer = None

    def _finish(self, how: str) -> None:
        """Once per call: stop timers and log its one summary line."""
        if self._finished or not hasattr(self, "call"):
            return
        self._finished = True
        self.end_wait()
        log.info("voiceflow call ended (%s) %s", how, self.call.summary())

    def _stop_background(self) -> None:
        self._disarm_chime()
        if self._layer_task is not None:
            self._layer_task.cancel()
