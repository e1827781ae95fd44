"""What the hop test jobs record, shared by the dramatiq, arq and taskiq tests."""

from __future__ import annotations

import random
import threading
from typing import Any

from asynclocal import RequestContext
from tests.queues.stores import dirty, local_only, seen, tenant

__all__ = ["Board", "dirty", "expect", "local_only", "publisher_context", "seen", "tenant"]


class Board:
    """Records of every job run, by tag (thread-safe)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.runs: dict[str, list[dict[str, Any]]] = {}

    def add(self, tag: str, record: dict[str, Any]) -> None:
        with self.cond:
            self.runs.setdefault(tag, []).append(record)
            self.cond.notify_all()

    def count(self) -> int:
        with self.cond:
            return sum(len(v) for v in self.runs.values())

    def wait(self, count: int, timeout: float = 30.0) -> None:
        with self.cond:
            ok = self.cond.wait_for(
                lambda: sum(len(v) for v in self.runs.values()) >= count, timeout
            )
        assert ok, f"only {sorted(self.runs)} ran, {count} expected"


def publisher_context(i: int) -> RequestContext:
    ctx = RequestContext(f"req-{i}-{random.getrandbits(32):08x}")
    ctx.set("plan", f"plan-{i}")
    ctx.ensure_trace()
    return ctx


def expect(record: dict[str, Any], publisher: RequestContext | None, i: int | None) -> None:
    """`record` is what a job published by `publisher` (None: outside any request) must see."""
    assert record["request_id"] == record["task_id"]
    assert record["method"] == "TASK"
    assert record["local"] is None  # never travels, never leaks
    if publisher is None:
        assert record["parent"] is None
        assert record["root"] == record["request_id"]
        assert record["tenant"] is None
        assert record["plan"] is None
        return
    assert record["parent"] == publisher.request_id
    assert record["root"] == publisher.request_id
    assert record["trace_id"] == publisher.trace_id
    assert record["tenant"] == {"tenant": f"t-{i}"}
    assert record["plan"] == f"plan-{i}"


async def await_count(board: Board, count: int, timeout: float = 30.0) -> None:
    """`board.wait` for code on an event loop."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while board.count() < count:
        assert time.monotonic() < deadline, f"only {sorted(board.runs)} ran, {count} expected"
        await asyncio.sleep(0.01)
