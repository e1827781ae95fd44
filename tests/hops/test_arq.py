"""arq on the real Redis, with a real arq `Worker` in this process."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import Retry, create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker

from asynclocal import request_storage
from asynclocal.integrations import arq as al_arq
from asynclocal.integrations.arq import ContextNotSerializableError
from tests.hops.jobs import Board, await_count, dirty, expect, publisher_context, seen, tenant
from tests.queues.stores import redis_url

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

board = Board()
rng = random.Random(5)


async def record(ctx: dict[str, Any], tag: str) -> str:
    await asyncio.sleep(rng.choice((0.0, 0.001, 0.004)))
    board.add(tag, seen(ctx["job_id"]))
    dirty(ctx["job_id"])
    return tag


async def flaky(ctx: dict[str, Any], tag: str) -> None:
    board.add(tag, seen(ctx["job_id"]))
    dirty(ctx["job_id"])
    if ctx["job_try"] < 2:
        raise Retry(defer=0.01)


async def fan_out(ctx: dict[str, Any], tag: str) -> None:
    board.add(tag, seen(ctx["job_id"]))
    await ctx["redis"].enqueue_job("record", f"{tag}-child", _queue_name=ctx["queue"])


class Setup:
    def __init__(self, pool: ArqRedis, settings: RedisSettings, queue: str) -> None:
        self.pool = pool
        self.settings = settings
        self.queue = queue

    async def enqueue(self, name: str, tag: str) -> Any:
        return await self.pool.enqueue_job(name, tag, _queue_name=self.queue)

    async def run_worker(self) -> None:
        worker = Worker(
            functions=[record, flaky, fan_out],
            redis_settings=self.settings,
            queue_name=self.queue,
            burst=True,
            max_jobs=8,
            poll_delay=0.01,
            handle_signals=False,
            ctx={"queue": self.queue},
        )
        try:
            await worker.async_run()
        finally:
            await worker.close()


@pytest.fixture
async def setup(redis_server: str) -> AsyncIterator[Setup]:
    al_arq.install(fields=["plan"])
    board.runs.clear()
    settings = RedisSettings.from_dsn(redis_url(3))
    pool = await create_pool(settings)
    try:
        yield Setup(pool, settings, f"arq-{uuid.uuid4().hex[:8]}")
    finally:
        await pool.aclose()
        al_arq.uninstall()


async def in_request(i: int, coro_fn: Any, *args: Any) -> Any:
    ctx = publisher_context(i)
    with request_storage.scope(ctx), tenant.scope({"tenant": f"t-{i}"}):
        return ctx, await coro_fn(*args)


async def test_every_job_sees_the_context_it_was_enqueued_with(setup: Setup) -> None:
    publishers: dict[str, Any] = {}

    async def one(i: int) -> None:
        tag = f"j-{i}"
        await asyncio.sleep(rng.choice((0.0, 0.001)))
        if i % 5 == 0:
            publishers[tag] = (None, None)
            await setup.enqueue("record", tag)
        else:
            ctx, _ = await in_request(i, setup.enqueue, "record", tag)
            publishers[tag] = (ctx, i)

    await asyncio.gather(*(one(i) for i in range(50)))
    await setup.run_worker()
    await await_count(board, 50)
    assert sorted(board.runs) == sorted(publishers)
    for tag, runs in board.runs.items():
        assert len(runs) == 1
        expect(runs[0], *publishers[tag])
        assert runs[0]["path"] == "record"


async def test_retries_see_the_published_context(setup: Setup) -> None:
    ctx, job = await in_request(8, setup.enqueue, "flaky", "retry")
    await setup.run_worker()
    await await_count(board, 2)
    runs = board.runs["retry"]
    assert len(runs) == 2
    for run in runs:
        expect(run, ctx, 8)
        assert run["task_id"] == job.job_id


async def test_a_job_enqueued_by_a_job_continues_the_chain(setup: Setup) -> None:
    ctx, _ = await in_request(4, setup.enqueue, "fan_out", "parent")
    await setup.run_worker()
    await await_count(board, 2)
    parent = board.runs["parent"][0]
    child = board.runs["parent-child"][0]
    assert child["parent"] == parent["request_id"]
    assert child["root"] == ctx.request_id
    assert child["trace_id"] == ctx.trace_id
    assert child["tenant"] == {"tenant": "t-4"}


async def test_unserialisable_store_fails_at_enqueue_naming_it(setup: Setup) -> None:
    with (
        tenant.scope({"bad": object()}),
        pytest.raises(ContextNotSerializableError, match=r"tests\.queues\.tenant"),
    ):
        await setup.enqueue("record", "never")
    assert await setup.pool.zcard(setup.queue) == 0


async def test_install_is_reversible() -> None:
    original = ArqRedis.enqueue_job
    al_arq.install()
    assert al_arq.installed()
    assert ArqRedis.enqueue_job is not original
    al_arq.uninstall()
    assert not al_arq.installed()
    assert ArqRedis.enqueue_job is original
