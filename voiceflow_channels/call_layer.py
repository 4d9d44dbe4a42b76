"""One call's link to the channel layer: its group (so waits, audio and call control from any
process reach it), the pump that hands each message to its handler, and the retries that keep
the link through a layer outage."""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from . import metrics
from .layer_messages import LayerMessage, parse_layer_message
from .tasks import spawn
from .wait import group_name

log = logging.getLogger("voiceflow_channels")

# A layer receive that fails (a Redis timeout under load, Redis down) is retried, backing off
# to the max. A restarted Redis has lost the call's group, and messages miss the call until its
# retry re-joins it: up to the max after Redis is back. Each retry is one refused connect per
# call, so each waits a random 50-100% of its step: a process's calls, which all failed at
# once, do not all come back at the same instant.
RETRY_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0


def retry_delay(failures: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after `failures` failures in a row: doubling from RETRY_SECONDS up to
    RETRY_MAX_SECONDS, jittered down to half of that at random."""
    step = min(RETRY_SECONDS * 2 ** (failures - 1), RETRY_MAX_SECONDS)
    return float(step * (0.5 + rng() / 2))


class CallLayer:
    """Joins `call_sid`'s group on `layer` and hands each message, parsed, to `handle` (a method
    of the consumer, held weakly, as the Outbox holds its callbacks)."""

    def __init__(
        self, layer: Any, call_sid: str, handle: Callable[[LayerMessage], Awaitable[None]]
    ) -> None:
        self.layer = layer
        self.call_sid = call_sid
        self.group = group_name(call_sid)
        self.channel_name = ""
        self._handle = weakref.WeakMethod(handle)
        self._task: asyncio.Task[None] | None = None

    async def join(self) -> bool:
        """Join the call's group and start listening. A layer that fails (Redis down, its pool
        exhausted) costs the call its messages, never the call: logged, counted, False."""
        try:
            self.channel_name = await self.layer.new_channel()
            await self.layer.group_add(self.group, self.channel_name)
        except Exception as exc:
            metrics.LAYER_FAILURES.labels("join").inc()
            log.warning(
                "voiceflow could not join the layer callSid=%s (%s: %s): waits will not "
                "reach this call",
                self.call_sid,
                type(exc).__name__,
                exc,
            )
            return False
        self._task = spawn(self._pump())
        return True

    async def leave(self) -> None:
        """Stop listening and leave the group; a failure is logged (the group expires on its own,
        channels' group_expiry)."""
        self.cancel()
        if not self.channel_name:
            return
        try:
            await self.layer.group_discard(self.group, self.channel_name)
        except Exception as exc:
            metrics.LAYER_FAILURES.labels("leave").inc()
            log.warning(
                "voiceflow could not leave %s (%s: %s)", self.group, type(exc).__name__, exc
            )

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _pump(self) -> None:
        """Hand the call's messages to `handle` while it lives. A failing layer is retried with
        backoff, and the call re-joins its group before it listens again: a Redis that
        restarted has forgotten the group, and nothing would reach the call."""
        failures = 0  # in a row, since the last message: they set the backoff
        rejoin = False
        while True:
            step = "join" if rejoin else "receive"
            try:
                if rejoin:
                    await self.layer.group_add(self.group, self.channel_name)
                    log.info(
                        "voiceflow re-joined the layer callSid=%s after %d failures",
                        self.call_sid,
                        failures,
                    )
                    rejoin, step = False, "receive"
                raw = await self.layer.receive(self.channel_name)
            except Exception as exc:
                failures += 1
                rejoin = True
                metrics.LAYER_FAILURES.labels(step).inc()
                retry = retry_delay(failures)
                log.warning(
                    "voiceflow layer %s failed callSid=%s (%s: %s); retrying in %.1fs",
                    step,
                    self.call_sid,
                    type(exc).__name__,
                    exc,
                    retry,
                )
                await asyncio.sleep(retry)
                continue
            failures = 0
            try:
                message = parse_layer_message(raw)
            except ValueError as exc:  # pydantic's ValidationError included
                metrics.LAYER_FAILURES.labels("bad_message").inc()
                log.warning("voiceflow ignored layer message callSid=%s: %s", self.call_sid, exc)
                continue
            handle = self._handle()
            if handle is None:
                return  # the call's consumer is gone
            try:
                await handle(message)
            except Exception:
                # A bug of ours (or of a subclass's handler), not a peer's bad message: it is
                # shown with its traceback and counted, and the call's next message still comes.
                metrics.INTERNAL_ERRORS.labels("layer_handler").inc()
                log.exception(
                    "voiceflow layer handler for %s raised callSid=%s; the call goes on",
                    message.type,
                    self.call_sid,
                )
