"""Dramatiq on the real Redis, with a real `dramatiq.Worker` (threads) in this process."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from asynclocal import request_storage
from asynclocal.integrations.dramatiq import (
    HEADER,
    AsyncLocalMiddleware,
    ContextNotSerializableError,
)
from tests.hops.jobs import Board, dirty, expect, local_only, publisher_context, seen, tenant
from tests.queues.stores import redis_url

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


class App:
    def __init__(self) -> None:
        self.broker = RedisBroker(url=redis_url(2), namespace=f"hops-{uuid.uuid4().hex[:8]}")
        self.broker.add_middleware(CurrentMessage())
        self.broker.add_middleware(AsyncLocalMiddleware(fields=["plan"]))
        self.board = Board()
        board = self.board
        rng = random.Random(3)

        def message_id() -> str:
            message = CurrentMessage.get_current_message()
            assert message is not None
            return str(message.message_id)

        def record(tag: str) -> None:
            time.sleep(rng.choice((0.0, 0.001, 0.004)))
            board.add(tag, seen(message_id()))
            dirty(message_id())

        def flaky(tag: str) -> None:
            board.add(tag, seen(message_id()))
            dirty(message_id())
            if len(board.runs[tag]) < 2:
                raise RuntimeError("first attempt fails")

        def fan_out(tag: str) -> None:
            board.add(tag, seen(message_id()))
            self.record.send(f"{tag}-child")

        self.record = dramatiq.actor(record, broker=self.broker, actor_name="record")
        self.flaky = dramatiq.actor(
            flaky,
            broker=self.broker,
            actor_name="flaky",
            max_retries=3,
            min_backoff=5,
            max_backoff=20,
        )
        self.fan_out = dramatiq.actor(fan_out, broker=self.broker, actor_name="fan_out")

    def worker(self) -> dramatiq.Worker:
        return dramatiq.Worker(self.broker, worker_threads=4, worker_timeout=50)


@pytest.fixture
def app(redis_server: str) -> Iterator[App]:
    app = App()
    worker = app.worker()
    worker.start()
    try:
        yield app
    finally:
        worker.stop()
        app.broker.close()


def send_as(i: int | None, send: Any, *args: Any) -> Any:
    if i is None:
        return send(*args)
    return request_storage.run(
        publisher_context(i), tenant.run, {"tenant": f"t-{i}"}, local_only.run, "x", send, *args
    )


def test_every_message_sees_the_context_it_was_sent_with(app: App) -> None:
    publishers: dict[str, Any] = {}

    def one(i: int) -> None:
        tag = f"m-{i}"
        if i % 5 == 0:
            publishers[tag] = None
            app.record.send(tag)
            return
        ctx = publisher_context(i)
        publishers[tag] = (ctx, i)
        request_storage.run(ctx, tenant.run, {"tenant": f"t-{i}"}, app.record.send, tag)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(50)))
    app.board.wait(50)
    assert sorted(app.board.runs) == sorted(publishers)
    for tag, runs in app.board.runs.items():
        assert len(runs) == 1
        published = publishers[tag]
        expect(runs[0], *(published or (None, None)))


def test_retries_see_the_published_context(app: App) -> None:
    ctx = publisher_context(7)
    message = request_storage.run(ctx, tenant.run, {"tenant": "t-7"}, app.flaky.send, "retry")
    app.board.wait(2)
    runs = app.board.runs["retry"]
    assert len(runs) == 2
    for run in runs:
        expect(run, ctx, 7)
        assert run["task_id"] == message.message_id


def test_a_message_sent_from_an_actor_continues_the_chain(app: App) -> None:
    ctx = publisher_context(3)
    request_storage.run(ctx, tenant.run, {"tenant": "t-3"}, app.fan_out.send, "parent")
    app.board.wait(2)
    parent = app.board.runs["parent"][0]
    child = app.board.runs["parent-child"][0]
    assert child["parent"] == parent["request_id"]
    assert child["root"] == ctx.request_id
    assert child["trace_id"] == ctx.trace_id
    assert child["tenant"] == {"tenant": "t-3"}


def test_unserialisable_store_fails_at_send_naming_it(redis_server: str) -> None:
    app = App()
    try:
        with pytest.raises(ContextNotSerializableError, match=r"tests\.queues\.tenant"):
            tenant.run({"bad": object()}, app.record.send, "never")
        assert app.broker.client.llen(f"{app.broker.namespace}:default") in (0, None)
        message = app.record.message("ok")
        assert HEADER not in message.options  # only enqueueing captures
    finally:
        app.broker.close()


def test_malformed_context_runs_the_message_as_a_root(app: App) -> None:
    message = app.record.message_with_options(args=("junk",))
    message.options[HEADER] = '{"v": 1, "carrier": {"x-request-id": "a\\r\\nb"}}'
    app.broker.enqueue(message)
    app.board.wait(1)
    run = app.board.runs["junk"][0]
    expect(run, None, None)
