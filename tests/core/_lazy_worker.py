"""A stand-in for a library that lazily starts one long-lived worker thread on first use."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class LazyWorker:
    """Runs submitted callables, one at a time, on a thread started by the first `submit`."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True)
                self._thread.start()
        fut: Future[Any] = Future()
        self._jobs.put((fn, fut))
        return fut

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(10)

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, fut = job
            fut.set_result(fn())


class ListenerThread(threading.Thread):
    """A `Thread` subclass with its own `run()` (found by its class's module)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: Any = "unset"

    def run(self) -> None:
        from asynclocal.request import request_id

        self.seen = request_id()
