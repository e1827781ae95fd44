"""Fixtures for the logging tests: real loggers writing real lines into lists."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator

import pytest

from asynclocal.request import RequestContext, request_storage
from asynclocal.threads import ThreadPoolExecutor

_ids = itertools.count()


class ListHandler(logging.Handler):
    """A real handler that keeps every formatted line (emit runs under the handler lock)."""

    def __init__(self, fmt: logging.Formatter | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        if fmt is not None:
            self.setFormatter(fmt)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # as every stdlib handler does: report, never raise
            self.handleError(record)


@pytest.fixture
def make_logger() -> Iterator[Callable[..., logging.Logger]]:
    """Build an isolated logger (own name, no propagation) with the given handlers."""
    made: list[logging.Logger] = []

    def make(*handlers: logging.Handler) -> logging.Logger:
        logger = logging.getLogger(f"asynclocal.tests.logging.{next(_ids)}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        for handler in handlers:
            logger.addHandler(handler)
        made.append(logger)
        return logger

    yield make
    for logger in made:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()


# -- the simulated service ------------------------------------------------------
#
# Each request logs four lines: from a repository function three calls deep, from
# a thread-pool job, from a background task that outlives the request, and from
# the handler itself. Every log call passes the id the code *knows* it serves
# (`expect`) explicitly, so the test can compare it with the id the logging
# integration *captured* from the context.

Emit = Callable[[str, str], None]
KINDS = ("repo", "pool", "background", "handler")


def _query(emit: Emit, rid: str) -> None:
    emit("repo", rid)


def _repository_find(emit: Emit, rid: str) -> None:
    _query(emit, rid)


async def _service(emit: Emit, rid: str, rng: random.Random) -> None:
    await asyncio.sleep(rng.random() * 0.002)
    _repository_find(emit, rid)


def _pool_job(emit: Emit, rid: str, delay: float) -> None:
    time.sleep(delay)
    emit("pool", rid)


async def _background(emit: Emit, rid: str, delay: float) -> None:
    await asyncio.sleep(delay)
    emit("background", rid)


async def simulate_requests(
    emit: Emit,
    n: int = 200,
    *,
    seed: int = 7,
    make_context: Callable[[str], RequestContext] | None = None,
) -> list[str]:
    """Serve `n` concurrent requests with random awaits; return their ids."""
    rng = random.Random(seed)
    background: list[asyncio.Task[None]] = []
    ids = [f"req-{i:04d}-{rng.getrandbits(32):08x}" for i in range(n)]
    with ThreadPoolExecutor(max_workers=6) as pool:

        async def handler(rid: str) -> None:
            await asyncio.sleep(rng.random() * 0.003)
            await _service(emit, rid, rng)
            await asyncio.wrap_future(pool.submit(_pool_job, emit, rid, rng.random() * 0.001))
            background.append(asyncio.create_task(_background(emit, rid, rng.random() * 0.004)))
            await asyncio.sleep(rng.random() * 0.002)
            emit("handler", rid)

        def context(rid: str) -> RequestContext:
            return make_context(rid) if make_context else RequestContext(rid)

        await asyncio.wait_for(
            asyncio.gather(*(request_storage.run(context(rid), handler, rid) for rid in ids)),
            timeout=60,
        )
        await asyncio.wait_for(asyncio.gather(*background), timeout=30)
    return ids


def check_lines(pairs: list[tuple[str, str, str]], ids: list[str]) -> None:
    """`pairs` are (captured id, expected id, kind): every line matches, none is missing."""
    mixups = [(got, want, kind) for got, want, kind in pairs if got != want]
    assert not mixups, f"{len(mixups)} lines carry another request's id, e.g. {mixups[:3]}"
    seen: dict[str, list[str]] = {}
    for _got, want, kind in pairs:
        seen.setdefault(want, []).append(kind)
    assert set(seen) == set(ids)
    for rid, kinds in seen.items():
        assert sorted(kinds) == sorted(KINDS), (rid, kinds)
