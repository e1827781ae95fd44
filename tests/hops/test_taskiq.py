"""taskiq on the real Redis (taskiq-redis `ListQueueBroker`), with a real taskiq `Receiver`."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from taskiq import Context, SimpleRetryMiddleware, TaskiqDepends
from taskiq.api import run_receiver_task
from taskiq_redis import ListQueueBroker

from asynclocal import request_storage
from asynclocal.integrations.taskiq import AsyncLocalMiddleware, ContextNotSerializableError
from tests.hops.jobs import Board, await_count, dirty, expect, publisher_context, seen, tenant
from tests.queues.stores import redis_url

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


CONTEXT: Any = TaskiqDepends()


class App:
    def __init__(self) -> None:
        self.broker = ListQueueBroker(
            redis_url(4), queue_name=f"taskiq-{uuid.uuid4().hex[:8]}"
        ).with_middlewares(
            SimpleRetryMiddleware(default_retry_count=3), AsyncLocalMiddleware(fields=["plan"])
        )
        self.board = Board()
        board = self.board
        rng = random.Random(9)

        @self.broker.task(task_name="record")
        async def record(tag: str, context: Context = CONTEXT) -> None:
            await asyncio.sleep(rng.choice((0.0, 0.001, 0.004)))
            board.add(tag, seen(context.message.task_id))
            dirty(context.message.task_id)

        @self.broker.task(task_name="record_sync")
        def record_sync(tag: str, context: Context = CONTEXT) -> None:
            board.add(tag, seen(context.message.task_id))
            dirty(context.message.task_id)

        @self.broker.task(task_name="flaky", retry_on_error=True)
        async def flaky(tag: str, context: Context = CONTEXT) -> None:
            board.add(tag, seen(context.message.task_id))
            dirty(context.message.task_id)
            if len(board.runs[tag]) < 2:
                raise RuntimeError("first attempt fails")

        @self.broker.task(task_name="fan_out")
        async def fan_out(tag: str, context: Context = CONTEXT) -> None:
            board.add(tag, seen(context.message.task_id))
            await record.kiq(f"{tag}-child")

        self.record, self.record_sync, self.flaky, self.fan_out = (
            record,
            record_sync,
            flaky,
            fan_out,
        )


@pytest.fixture
async def app(redis_server: str) -> AsyncIterator[App]:
    app = App()
    await app.broker.startup()
    worker = asyncio.create_task(run_receiver_task(app.broker, max_async_tasks=8))
    try:
        yield app
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
        await app.broker.shutdown()


async def in_request(i: int, task: Any, tag: str) -> Any:
    ctx = publisher_context(i)
    with request_storage.scope(ctx), tenant.scope({"tenant": f"t-{i}"}):
        return ctx, await task.kiq(tag)


async def test_every_task_sees_the_context_it_was_sent_with(app: App) -> None:
    publishers: dict[str, Any] = {}

    async def one(i: int) -> None:
        tag = f"t-{i}"
        task = app.record_sync if i % 3 == 0 else app.record
        if i % 5 == 0:
            publishers[tag] = (None, None)
            await task.kiq(tag)
        else:
            ctx, _ = await in_request(i, task, tag)
            publishers[tag] = (ctx, i)

    await asyncio.gather(*(one(i) for i in range(50)))
    await await_count(app.board, 50)
    assert sorted(app.board.runs) == sorted(publishers)
    for tag, runs in app.board.runs.items():
        assert len(runs) == 1
        expect(runs[0], *publishers[tag])


async def test_retries_see_the_published_context(app: App) -> None:
    ctx, sent = await in_request(6, app.flaky, "retry")
    await await_count(app.board, 2)
    runs = app.board.runs["retry"]
    for run in runs:
        expect(run, ctx, 6)
        assert run["task_id"] == sent.task_id


async def test_a_task_sent_by_a_task_continues_the_chain(app: App) -> None:
    ctx, _ = await in_request(2, app.fan_out, "parent")
    await await_count(app.board, 2)
    parent = app.board.runs["parent"][0]
    child = app.board.runs["parent-child"][0]
    assert child["parent"] == parent["request_id"]
    assert child["root"] == ctx.request_id
    assert child["trace_id"] == ctx.trace_id


async def test_unserialisable_store_fails_at_send_naming_it(app: App) -> None:
    with (
        tenant.scope({"bad": object()}),
        pytest.raises(ContextNotSerializableError, match=r"tests\.queues\.tenant"),
    ):
        await app.record.kiq("never")
    await asyncio.sleep(0.05)
    assert "never" not in app.board.runs


async def test_hostile_context_runs_the_task_as_a_root_and_logs_nothing_raw(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import logging

    caplog.set_level(logging.DEBUG, logger="asynclocal")
    hostile = ["a\r\nb", "x" * 10_000, "caf\u00e9", "a\x00b", "a b"]
    for i, value in enumerate(hostile):
        header = json.dumps(
            {
                "v": 1,
                "carrier": {
                    "x-request-id": value,
                    "x-root-request-id": value,
                    "traceparent": value,
                },
            }
        )
        await app.record.kicker().with_labels(asynclocal=header).kiq(f"h-{i}")
    await app.record.kicker().with_labels(asynclocal="{not json " + hostile[0]).kiq("h-junk")
    await await_count(app.board, len(hostile) + 1)
    for runs in app.board.runs.values():
        expect(runs[0], None, None)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("asynclocal")]
    for value in hostile:
        assert not any(value in line for line in ours)
