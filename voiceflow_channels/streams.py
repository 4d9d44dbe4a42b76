"""The streams this process holds: how many, whether it takes new ones, and the drain.

Framework-free. One instance per process (`STREAMS`): a stream is added when its upgrade is
accepted and discarded when it ends. A drain (on SIGTERM, see `voiceflow_channels.server`) stops
taking streams, lets the live ones end on their own, and closes what is left at the deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .tasks import spawn


class Streams:
    """Live streams and the drain; `refusal()` says why a new stream must be refused."""

    def __init__(self) -> None:
        self.live: set[Any] = set()
        self.draining = False
        self._empty: asyncio.Event | None = None

    def refusal(self, max_streams: int) -> str | None:
        """None when a new stream may start; else why not: "draining" or "at_capacity"."""
        if self.draining:
            return "draining"
        if len(self.live) >= max_streams:
            return "at_capacity"
        return None

    def add(self, stream: Any) -> None:
        self.live.add(stream)

    def discard(self, stream: Any) -> None:
        self.live.discard(stream)
        if not self.live and self._empty is not None:
            self._empty.set()

    async def drain(
        self,
        seconds: float,
        close: Callable[[Any], Awaitable[None]],
        hand_over: Callable[[Any], Coroutine[Any, Any, None]] | None = None,
    ) -> int:
        """Stop taking streams; `hand_over` each live one (it may end it at a moment of its
        choosing); wait up to `seconds` for them to end; then `close` each one left. Returns
        how many had to be closed."""
        self.draining = True
        self._empty = asyncio.Event()
        handing = [spawn(hand_over(s), "hand_over") for s in self.live] if hand_over else []
        if self.live:
            try:
                async with asyncio.timeout(seconds):
                    await self._empty.wait()
            except TimeoutError:
                pass
        for task in handing:
            task.cancel()
        left = list(self.live)
        for stream in left:
            await close(stream)
        return len(left)


STREAMS = Streams()
