"""Concurrent requests: each gets its own transaction, and they never share a session."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import insert

from asynclocal.request import RequestContext, current_request, request_storage
from asynclocal.threads import ThreadPoolExecutor
from asynclocal.transactions import TransactionManager

from .conftest import Database, items

REQUESTS = 50
STEPS = 3


class Boom(Exception):
    pass


def failing(i: int) -> bool:
    return i % 5 == 3


class Tracker:
    """Per-request evidence: the sessions each request saw, and how many ran at once."""

    def __init__(self) -> None:
        self.sessions: dict[str, set[int]] = defaultdict(set)
        self.keep: list[Any] = []  # keeps sessions alive so their ids stay unique
        self.active = 0
        self.max_active = 0

    def saw(self, session: Any) -> None:
        self.sessions[current_request().request_id].add(id(session))
        self.keep.append(session)

    def enter(self) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)

    def check(self, db: Database, results: list[int | None]) -> None:
        ok = [i for i in range(len(results)) if not failing(i)]
        assert results == [None if failing(i) else i for i in range(len(results))]
        # One session per request, never the same one for two requests.
        assert all(len(ids) == 1 for ids in self.sessions.values())
        assert len({next(iter(ids)) for ids in self.sessions.values()}) == len(results)
        assert self.max_active > 1, "the requests did not interleave"
        rows = db.rows()
        by_request: dict[str, list[str]] = defaultdict(list)
        for request_id, label in rows:
            by_request[request_id].append(label)
        expected = {f"req-{i:03d}": [f"req-{i:03d}/{step}" for step in range(STEPS)] for i in ok}
        assert dict(by_request) == expected  # failed requests left nothing
        assert db.open_transactions() == 0


@pytest.mark.parametrize(
    "async_db",
    [pytest.param("asyncpg", marks=pytest.mark.postgres), "aiosqlite-immediate"],
    indirect=True,
)
async def test_interleaved_async_requests(async_db: Database) -> None:
    tm: TransactionManager[Any] = async_db.tm
    rng = random.Random(20261122)
    track = Tracker()

    async def pause() -> None:
        await asyncio.sleep(rng.random() * 0.003)

    async def repository(i: int, step: int) -> None:
        session = tm.current_session()
        track.saw(session)
        await pause()
        # The label comes from the argument, the request id from the context.
        await session.execute(
            insert(items).values(
                request_id=current_request().request_id, label=f"req-{i:03d}/{step}"
            )
        )
        record = tm.current_transaction()
        assert record is not None
        assert record.request_id == current_request().request_id

    async def service(i: int, step: int) -> None:
        await pause()
        await repository(i, step)

    @tm.transactional
    async def controller(i: int) -> int:
        track.enter()
        try:
            for step in range(STEPS):
                await service(i, step)
            if failing(i):
                raise Boom(i)
            return i
        finally:
            track.active -= 1

    async def handle(i: int) -> int | None:
        await pause()
        try:
            return await request_storage.run(RequestContext(f"req-{i:03d}"), controller, i)
        except Boom:
            return None

    results = await asyncio.wait_for(asyncio.gather(*(handle(i) for i in range(REQUESTS))), 60)
    track.check(async_db, list(results))


@pytest.mark.postgres
@pytest.mark.parametrize("sync_db", ["postgres"], indirect=True)
def test_interleaved_sync_requests_in_threads(sync_db: Database) -> None:
    tm = sync_db.tm
    track = Tracker()
    lock = __import__("threading").Lock()

    def pause(i: int, step: int) -> None:
        time.sleep(random.Random(i * 10 + step).random() * 0.003)

    def repository(i: int, step: int) -> None:
        session = tm.current_session()
        with lock:
            track.saw(session)
        pause(i, step)
        session.execute(
            insert(items).values(
                request_id=current_request().request_id, label=f"req-{i:03d}/{step}"
            )
        )

    @tm.transactional
    def controller(i: int) -> int:
        with lock:
            track.enter()
        try:
            for step in range(STEPS):
                repository(i, step)
            if failing(i):
                raise Boom(i)
            return i
        finally:
            with lock:
                track.active -= 1

    def handle(i: int) -> int | None:
        try:
            return request_storage.run(RequestContext(f"req-{i:03d}"), controller, i)
        except Boom:
            return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(handle, range(30), timeout=60))
    track.check(sync_db, results)
