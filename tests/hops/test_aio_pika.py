"""RabbitMQ: a real rabbitmq-server on 127.0.0.1; aio-pika publish/consume carries the context."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from asynclocal import request_storage
from asynclocal.integrations import aio_pika as al_aio_pika
from asynclocal.integrations.aio_pika import HEADER, ContextNotSerializableError
from tests.hops.jobs import dirty, local_only, publisher_context, seen, tenant

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def channel(rabbitmq_server: str) -> AsyncIterator[Any]:
    al_aio_pika.install(fields=["plan"])
    connection = await aio_pika.connect_robust(rabbitmq_server, timeout=20)
    try:
        ch = await connection.channel()
        await ch.set_qos(prefetch_count=16)
        yield ch
    finally:
        await connection.close()
        al_aio_pika.uninstall()


async def new_queue(channel: Any) -> Any:
    return await channel.declare_queue(f"hops-{uuid.uuid4().hex[:8]}", auto_delete=True)


def check(record: dict[str, Any], publisher: Any, i: int) -> None:
    assert record["method"] == "AMQP"
    assert record["local"] is None
    assert record["parent"] == publisher.request_id
    assert record["root"] == publisher.request_id
    assert record["trace_id"] == publisher.trace_id
    assert record["request_id"] not in (None, publisher.request_id)
    assert record["tenant"] == {"tenant": f"t-{i}"}
    assert record["plan"] == f"plan-{i}"


async def publish(channel: Any, queue: Any, tag: str, **props: Any) -> None:
    await channel.default_exchange.publish(
        aio_pika.Message(json.dumps({"tag": tag}).encode(), **props), routing_key=queue.name
    )


async def test_each_message_runs_in_a_fresh_context_of_its_own(channel: Any) -> None:
    rng = random.Random(2)
    queue = await new_queue(channel)
    records: dict[str, dict[str, Any]] = {}
    done = asyncio.Event()

    async def handler(message: Any) -> None:
        async with message.process():
            tag = json.loads(message.body)["tag"]
            await asyncio.sleep(rng.choice((0.0, 0.001, 0.003)))
            records[tag] = {**seen(tag), "path": request_storage.get_store().path}  # type: ignore[union-attr]
            dirty(tag)
            if len(records) == 60:
                done.set()

    await queue.consume(handler)
    publishers: dict[str, Any] = {}

    async def one(i: int) -> None:
        tag = f"m-{i}"
        await asyncio.sleep(rng.choice((0.0, 0.001)))
        if i % 6 == 0:
            publishers[tag] = None
            await publish(channel, queue, tag)
            return
        ctx = publisher_context(i)
        publishers[tag] = (ctx, i)
        with request_storage.scope(ctx), tenant.scope({"tenant": f"t-{i}"}), local_only.scope("x"):
            await publish(channel, queue, tag)

    await asyncio.gather(*(one(i) for i in range(60)))
    await asyncio.wait_for(done.wait(), 30)
    for tag, record in records.items():
        published = publishers[tag]
        if published is None:
            assert record["parent"] is None
            assert record["tenant"] is None
            assert record["root"] == record["request_id"]
        else:
            check(record, *published)
        assert record["path"] == queue.name


async def test_redelivered_messages_keep_their_own_context(channel: Any) -> None:
    queue = await new_queue(channel)
    attempts: dict[str, list[dict[str, Any]]] = {}
    done = asyncio.Event()

    async def handler(message: Any) -> None:
        tag = json.loads(message.body)["tag"]
        attempts.setdefault(tag, []).append({**seen(tag), "redelivered": message.redelivered})
        dirty(tag)
        if len(attempts[tag]) == 1:
            await message.reject(requeue=True)  # comes back, maybe to another consumer slot
        else:
            await message.ack()
        if sum(len(v) for v in attempts.values()) == 20:
            done.set()

    await queue.consume(handler)
    publishers = {}
    for i in range(10):
        ctx = publisher_context(i)
        publishers[f"r-{i}"] = (ctx, i)
        with request_storage.scope(ctx), tenant.scope({"tenant": f"t-{i}"}):
            await publish(channel, queue, f"r-{i}", message_id=f"msg-{i}")
    await asyncio.wait_for(done.wait(), 30)
    for tag, runs in attempts.items():
        assert [run["redelivered"] for run in runs] == [False, True]
        for run in runs:
            check(run, *publishers[tag])
            assert run["request_id"] == f"msg-{tag[2:]}"  # the message id, on every delivery


async def test_iterator_consumers_use_message_context(channel: Any) -> None:
    queue = await new_queue(channel)
    ctx = publisher_context(5)
    with request_storage.scope(ctx), tenant.scope({"tenant": "t-5"}):
        await publish(channel, queue, "it")
    message = await queue.get(timeout=10, fail=True)
    with al_aio_pika.message_context(message):
        check(seen("it"), ctx, 5)
    await message.ack()
    assert request_storage.get_store() is None


async def test_foreign_and_hostile_headers(channel: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asynclocal")
    queue = await new_queue(channel)
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handler(message: Any) -> None:
        async with message.process():
            await received.put(seen("h"))

    await queue.consume(handler)
    trace = "0af7651916cd43dd8448eb211c80319c"
    await publish(
        channel,
        queue,
        "f",
        headers={
            "x-request-id": "svc-1",
            "x-root-request-id": "root-1",
            "traceparent": f"00-{trace}-b7ad6b7169203331-01",
        },
    )
    got = await asyncio.wait_for(received.get(), 10)
    assert (got["parent"], got["root"], got["trace_id"]) == ("svc-1", "root-1", trace)
    hostile = ["a b", "x" * 10_000, "caf\u00e9", "a\x00b", "a\r\nb", "a;b"]
    for value in hostile:
        await publish(
            channel,
            queue,
            "h",
            message_id=value if len(value) < 200 else None,  # AMQP shortstr: 255 bytes
            headers={"x-request-id": value, "x-root-request-id": value, "traceparent": value},
        )
        got = await asyncio.wait_for(received.get(), 10)
        assert got["parent"] is None
        assert got["root"] == got["request_id"] != value
        assert len(got["trace_id"]) == 32
    await publish(channel, queue, "h", headers={HEADER: "{not json"})
    got = await asyncio.wait_for(received.get(), 10)
    assert got["parent"] is None
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("asynclocal")]
    for value in hostile:
        assert not any(value in line for line in ours)


async def test_unserialisable_store_fails_at_publish(channel: Any) -> None:
    queue = await new_queue(channel)
    with (
        request_storage.scope(publisher_context(1)),
        tenant.scope({"bad": object()}),
        pytest.raises(ContextNotSerializableError, match=r"tests\.queues\.tenant"),
    ):
        await publish(channel, queue, "never")
    await asyncio.sleep(0.1)
    assert await queue.get(fail=False) is None
