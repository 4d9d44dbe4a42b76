"""Tasks the edge spawns, each one observed: a task that raises is logged with its traceback and
counted (`voiceflow_internal_errors{where}`) as it ends, never left to asyncio's "Task exception
was never retrieved" when it is collected, and held while it runs (the loop keeps only a weak
reference). A task that is awaited is observed by its awaiter and needs none of this."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from . import metrics

log = logging.getLogger("voiceflow_channels")

T = TypeVar("T")
_RUNNING: set[asyncio.Task[Any]] = set()


def spawn(work: Coroutine[Any, Any, T], where: str | None = None) -> asyncio.Task[T]:
    """Run `work` in a task of its own; `where` names it in the log and the metric (default:
    the coroutine's own name, e.g. `RealtimeAssistant._converse`)."""
    name = where or str(getattr(work, "__qualname__", "task"))
    task = asyncio.create_task(work)
    _RUNNING.add(task)
    task.add_done_callback(functools.partial(_ended, name))
    return task


def _ended(where: str, task: asyncio.Task[Any]) -> None:
    _RUNNING.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        metrics.INTERNAL_ERRORS.labels(where).inc()
        log.error("voiceflow task %s raised; it is over", where, exc_info=exc)
