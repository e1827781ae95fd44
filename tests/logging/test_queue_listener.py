"""A `QueueHandler`/`QueueListener` prints the request each record was logged in."""

from __future__ import annotations

import asyncio
import io
import logging
import logging.handlers
import queue
import random
import re
from collections.abc import Iterator

import pytest

import asynclocal.logging
from asynclocal import current_request, request_id, with_request_context
from asynclocal.logging import ContextFilter, Formatter
from asynclocal.threads import ThreadPoolExecutor

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """An isolated logger (no propagation) that each test gives its own handlers."""
    lg = logging.getLogger(f"tests.logging.queue.{random.random()}")
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    try:
        yield lg
    finally:
        for h in list(lg.handlers):
            lg.removeHandler(h)
            h.close()


def stream_handler(fmt: str, *filters: logging.Filter) -> tuple[logging.Handler, io.StringIO]:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(Formatter(fmt))
    for f in filters:
        handler.addFilter(f)
    return handler, buf


# --------------------------------------------------------------------------- QueueHandler


async def _simulate(logger: logging.Logger, n: int) -> list[str]:
    """n concurrent requests; each logs three calls deep, from a pool job and a late task."""
    pool = ThreadPoolExecutor(max_workers=4)
    background: list[asyncio.Task[None]] = []

    def repository(tag: str) -> None:
        logger.info("repo %s %s", tag, request_id())

    def service(tag: str) -> None:
        repository(tag)

    async def controller(tag: str) -> None:
        await asyncio.sleep(random.random() / 1000)
        service(tag)

    async def late(tag: str) -> None:
        await asyncio.sleep(random.random() / 200)
        logger.info("late %s %s", tag, request_id())

    async def handle() -> None:
        rid = current_request().request_id
        await controller(rid)
        await asyncio.get_running_loop().run_in_executor(
            pool, lambda: logger.info("pool %s %s", rid, request_id())
        )
        background.append(asyncio.create_task(late(rid)))

    ids = [f"q-{i}" for i in range(n)]
    try:
        await asyncio.gather(*(with_request_context({"X-Request-ID": rid}, handle) for rid in ids))
        await asyncio.gather(*background)
    finally:
        pool.shutdown(wait=True)
    return ids


def _check_queue_lines(lines: list[str], ids: list[str]) -> None:
    assert len(lines) == 3 * len(ids), len(lines)
    per_id: dict[str, list[str]] = {}
    for line in lines:
        m = re.fullmatch(r"\[([^\]]+)\] (repo|pool|late) (\S+) (\S+)", line)
        assert m, line
        assert m.group(1) == m.group(3) == m.group(4), line
        per_id.setdefault(m.group(1), []).append(m.group(2))
    assert sorted(per_id) == sorted(ids)
    assert all(sorted(kinds) == ["late", "pool", "repo"] for kinds in per_id.values())


@pytest.mark.parametrize("where", ["queue_handler", "listener_handler_with_capture"])
def test_queue_handler_and_listener_print_each_records_own_request(
    logger: logging.Logger, where: str
) -> None:
    q: queue.Queue[logging.LogRecord] = queue.Queue()
    qh = logging.handlers.QueueHandler(q)
    target, buf = stream_handler("[%(request_id)s] %(message)s")
    if where == "queue_handler":
        qh.addFilter(ContextFilter())
    else:  # documented: a filter only on the listener's handlers needs capture_at_creation
        target.addFilter(ContextFilter())
        asynclocal.logging.capture_at_creation()
    logger.addHandler(qh)
    listener = logging.handlers.QueueListener(q, target, respect_handler_level=True)
    listener.start()
    try:
        ids = asyncio.run(_simulate(logger, 100))
    finally:
        listener.stop()
        if where != "queue_handler":
            asynclocal.logging.stop_capture_at_creation()
    _check_queue_lines(buf.getvalue().splitlines(), ids)
