"""The threads sync tools run in: a bounded pool that counts its busy threads, overdue ones too.

Python cannot stop a thread, so a sync tool past its deadline runs on until its backend answers.
The pool has `size` threads: a backend that hangs holds at most that many, never the process's
memory or its other threads; calls beyond them wait their turn, their deadline running, and a call
whose caller gave up before its turn never runs. `busy` is told the count at each change (a
gauge's `set`), and `around` wraps each call (the Django adapter's connection hygiene).

Framework-free: no Django.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def _call(call: Callable[[], Any]) -> Any:
    return call()


class ToolThreads(Executor):
    """`size` threads named voiceflow-tool-N; `busy` counts those running a call now."""

    def __init__(
        self,
        size: int,
        busy: Callable[[int], object] = lambda count: None,
        around: Callable[[Callable[[], Any]], Any] = _call,
    ) -> None:
        if size < 1:
            raise ValueError(f"a pool of {size} threads runs nothing: give it at least one")
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="voiceflow-tool")
        self._report = busy
        self._around = around
        self._lock = threading.Lock()
        self.busy = 0

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._pool.submit(self._run, functools.partial(fn, *args, **kwargs))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def _run(self, call: Callable[[], T]) -> T:
        self._change(1)
        try:
            result: T = self._around(call)
            return result
        finally:
            self._change(-1)

    def _change(self, by: int) -> None:
        with self._lock:
            self.busy += by
            self._report(self.busy)
