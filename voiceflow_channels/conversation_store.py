"""Each call's conversation kept in Django's cache (VOICEFLOW_CONVERSATION_CACHE, by default the
call-control cache) under its CallSid, for as long as the call's end is kept there: whichever
process carries the call on next reads it. A cache that fails is logged and counted; the call
goes on (it would only start over if it moved).

A cache in the process's own memory (Django's LocMemCache: a single process's) is written on
the spot: its `set` is a pickle and a lock, about 8 us, where the hop to a thread that `aset`
takes costs about 125 us of CPU. Any other cache (Redis, Memcached, a database) is written in
a thread, off the loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache

from . import conf, metrics
from .call_control import TTL_SECONDS
from .tasks import spawn
from .wait import group_name

log = logging.getLogger("voiceflow_channels")

IN_MEMORY = (LocMemCache, DummyCache)


class ConversationRecord:
    """One call's record in the cache. `save(entries)` returns at once: one write runs at a time
    and the newest entries win (a write in flight is followed by one of what came since);
    `flushed()` waits for what was asked so far."""

    def __init__(self, call_sid: str) -> None:
        self.call_sid = call_sid
        self._key = group_name(call_sid) + ".conversation"
        self._pending: list[dict[str, Any]] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def load(self) -> object:
        """What the cache holds for the call (None: nothing, or the cache failed)."""
        try:
            return await caches[conf.conversation_cache()].aget(self._key)
        except Exception:
            metrics.CONVERSATION_FAILURES.labels("load").inc()
            log.exception(
                "voiceflow could not read the conversation of callSid=%s from the cache "
                "(VOICEFLOW_CONVERSATION_CACHE): the call starts over",
                self.call_sid,
            )
            return None

    def save(self, entries: list[dict[str, Any]]) -> None:
        idle = self._writer is None or self._writer.done()
        cache = caches[conf.conversation_cache()]
        if idle and isinstance(cache, IN_MEMORY):
            self._set(cache, entries)
            return
        self._pending = entries
        if idle:
            self._writer = spawn(self._write())

    async def flushed(self) -> None:
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        cache = caches[conf.conversation_cache()]
        while self._pending is not None:
            entries, self._pending = self._pending, None
            try:
                await cache.aset(self._key, entries, TTL_SECONDS)
            except Exception:
                self._failed()

    def _set(self, cache: BaseCache, entries: list[dict[str, Any]]) -> None:
        try:
            cache.set(self._key, entries, TTL_SECONDS)
        except Exception:
            self._failed()

    def _failed(self) -> None:
        metrics.CONVERSATION_FAILURES.labels("save").inc()
        log.exception(
            "voiceflow could not keep the conversation of callSid=%s in the cache "
            "(VOICEFLOW_CONVERSATION_CACHE): moved now, the call would start over",
            self.call_sid,
        )
