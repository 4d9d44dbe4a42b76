"""How a call's conversation is written to the cache: on the spot to a cache in the process's
memory, in a thread to any other (newest entries winning while a write is under way), and a
cache that fails is logged and counted without raising."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, ClassVar

import pytest
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache

from tests.utils import metric
from voiceflow_channels.conversation_store import ConversationRecord

ENTRY = {"kind": "user", "item_id": "i1", "text": "hello"}


class ThreadCache(BaseCache):
    """A cache that is not in memory: what each `set` got, in which thread; `hold` keeps a
    write waiting (`writing` says one is) until it is set."""

    sets: ClassVar[list[tuple[str, Any, str]]] = []
    hold = threading.Event()
    writing = threading.Event()

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)

    def set(self, key: str, value: Any, timeout: Any = None, version: Any = None) -> None:
        self.writing.set()
        self.hold.wait(10)
        self.sets.append((key, value, threading.current_thread().name))


class FailingMemory(LocMemCache):
    def set(self, *args: Any, **kwargs: Any) -> None:
        raise OSError("out of memory")


@pytest.fixture
def cache(settings, request):
    settings.CACHES = {**settings.CACHES, "talk": {"BACKEND": request.param}}
    settings.VOICEFLOW_CONVERSATION_CACHE = "talk"
    ThreadCache.sets = []
    ThreadCache.hold.set()
    ThreadCache.writing.clear()
    yield caches["talk"]
    ThreadCache.hold.set()


@pytest.mark.parametrize("cache", ["django.core.cache.backends.locmem.LocMemCache"], indirect=True)
async def test_a_cache_in_memory_holds_the_entries_when_save_returns(cache) -> None:
    record = ConversationRecord("CA1")
    record.save([ENTRY])
    assert cache.get(record._key) == [ENTRY]  # no task's turn, no thread
    record.save([ENTRY, {**ENTRY, "item_id": "i2"}])
    assert await record.load() == [ENTRY, {**ENTRY, "item_id": "i2"}]


@pytest.mark.parametrize("cache", [f"{__name__}.ThreadCache"], indirect=True)
async def test_another_cache_is_written_in_a_thread_the_newest_entries_winning(cache) -> None:
    ThreadCache.hold.clear()
    record = ConversationRecord("CA2")
    record.save([ENTRY])
    assert ThreadCache.sets == []  # save returned before the write
    await asyncio.to_thread(ThreadCache.writing.wait, 10)  # which waits in a thread
    record.save([ENTRY, {**ENTRY, "item_id": "i2"}])
    record.save([ENTRY, {**ENTRY, "item_id": "i3"}])  # the one that follows the first
    ThreadCache.hold.set()
    await record.flushed()
    written = [(value[-1]["item_id"], thread) for _, value, thread in ThreadCache.sets]
    assert [item for item, _ in written] == ["i1", "i3"]
    assert all(thread != threading.current_thread().name for _, thread in written)


@pytest.mark.parametrize("cache", [f"{__name__}.FailingMemory"], indirect=True)
async def test_a_cache_that_fails_to_keep_it_is_logged_and_counted(cache, caplog) -> None:
    failures = metric("voiceflow_conversation_failures_total", op="save")
    ConversationRecord("CA3").save([ENTRY])
    assert metric("voiceflow_conversation_failures_total", op="save") == failures + 1
    assert "could not keep the conversation of callSid=CA3" in caplog.text
