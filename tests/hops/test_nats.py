"""NATS: a real nats-server on 127.0.0.1; publish/subscribe and request/reply carry the context."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from asynclocal import request_storage
from asynclocal.integrations import nats as al_nats
from asynclocal.integrations.nats import ContextNotSerializableError
from tests.hops.jobs import dirty, local_only, publisher_context, seen, tenant

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def nc(nats_server: str) -> AsyncIterator[Any]:
    al_nats.install(fields=["plan"])
    client = await nats.connect(servers=[nats_server], connect_timeout=5)
    try:
        yield client
    finally:
        await client.drain()
        al_nats.uninstall()


def check(record: dict[str, Any], publisher: Any, i: int) -> None:
    assert record["method"] == "NATS"
    assert record["local"] is None
    assert record["parent"] == publisher.request_id
    assert record["root"] == publisher.request_id
    assert record["trace_id"] == publisher.trace_id
    assert record["request_id"] not in (None, publisher.request_id)
    assert record["tenant"] == {"tenant": f"t-{i}"}
    assert record["plan"] == f"plan-{i}"


async def test_publish_subscribe_each_message_in_its_own_context(nc: Any) -> None:
    rng = random.Random(1)
    records: dict[str, dict[str, Any]] = {}
    done = asyncio.Event()

    async def handler(msg: Any) -> None:
        await asyncio.sleep(rng.choice((0.0, 0.001)))
        tag = json.loads(msg.data)["tag"]
        records[tag] = {**seen(tag), "path": msg.subject}
        dirty(tag)  # must not leak into the next message of this subscription
        if len(records) == 60:
            done.set()

    await nc.subscribe("hops.events", cb=handler)
    publishers: dict[str, Any] = {}

    async def one(i: int) -> None:
        tag = f"e-{i}"
        await asyncio.sleep(rng.choice((0.0, 0.001)))
        if i % 6 == 0:
            publishers[tag] = None
            await nc.publish("hops.events", json.dumps({"tag": tag}).encode())
            return
        ctx = publisher_context(i)
        publishers[tag] = (ctx, i)
        with request_storage.scope(ctx), tenant.scope({"tenant": f"t-{i}"}), local_only.scope("x"):
            await nc.publish("hops.events", json.dumps({"tag": tag}).encode())

    await asyncio.gather(*(one(i) for i in range(60)))
    await asyncio.wait_for(done.wait(), 20)
    for tag, record in records.items():
        published = publishers[tag]
        if published is None:
            assert record["parent"] is None
            assert record["tenant"] is None
            assert record["root"] == record["request_id"]
        else:
            check(record, *published)
        assert record["path"] == "hops.events"


async def test_request_reply_concurrently(nc: Any) -> None:
    async def responder(msg: Any) -> None:
        await asyncio.sleep(random.choice((0.0, 0.001, 0.003)))
        await msg.respond(json.dumps(seen(msg.data.decode())).encode())

    await nc.subscribe("hops.rpc", cb=responder)

    async def one(i: int) -> None:
        ctx = publisher_context(i)
        with request_storage.scope(ctx), tenant.scope({"tenant": f"t-{i}"}):
            reply = await nc.request("hops.rpc", f"r-{i}".encode(), timeout=10)
        check(json.loads(reply.data), ctx, i)

    await asyncio.gather(*(one(i) for i in range(50)))


async def test_foreign_and_hostile_headers(nc: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asynclocal")
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handler(msg: Any) -> None:
        await received.put(seen("h"))

    await nc.subscribe("hops.hostile", cb=handler)
    trace = "0af7651916cd43dd8448eb211c80319c"
    # A publisher without asynclocal: plain W3C headers are continued.
    await nc.publish(
        "hops.hostile",
        b"",
        headers={
            "x-request-id": "svc-1",
            "x-root-request-id": "root-1",
            "traceparent": f"00-{trace}-b7ad6b7169203331-01",
        },
    )
    got = await asyncio.wait_for(received.get(), 10)
    assert (got["parent"], got["root"], got["trace_id"]) == ("svc-1", "root-1", trace)
    hostile = ["a b", "x" * 10_000, "caf\u00e9", "a\x00b", "a\r\nx-request-id: evil", "a;b"]
    for value in hostile:
        await nc.publish(
            "hops.hostile",
            b"",
            headers={"x-request-id": value, "x-root-request-id": value, "traceparent": value},
        )
        got = await asyncio.wait_for(received.get(), 10)
        assert got["parent"] is None
        assert got["root"] == got["request_id"] != value
        assert len(got["trace_id"]) == 32
    # A valid id with a malformed traceparent: the trace is not continued.
    await nc.publish(
        "hops.hostile", b"", headers={"x-request-id": "ok-1", "traceparent": "00-zz-yy-01"}
    )
    got = await asyncio.wait_for(received.get(), 10)
    assert got["trace_id"] != "zz"
    assert len(got["trace_id"]) == 32
    for value in hostile:
        assert value not in caplog.text


async def test_unserialisable_store_fails_at_publish(nc: Any) -> None:
    got: list[Any] = []

    async def handler(msg: Any) -> None:
        got.append(msg)

    await nc.subscribe("hops.never", cb=handler)
    with (
        request_storage.scope(publisher_context(1)),
        tenant.scope({"bad": object()}),
        pytest.raises(ContextNotSerializableError, match=r"tests\.queues\.tenant"),
    ):
        await nc.publish("hops.never", b"x")
    await nc.flush()
    await asyncio.sleep(0.05)
    assert got == []


async def test_message_context_for_iterator_subscriptions(nc: Any) -> None:
    sub = await nc.subscribe("hops.pull")
    ctx = publisher_context(3)
    with request_storage.scope(ctx), tenant.scope({"tenant": "t-3"}):
        await nc.publish("hops.pull", b"x")
    msg = await sub.next_msg(timeout=5)
    with al_nats.message_context(msg) as inner:
        check(seen("p") | {"request_id": inner.request_id}, ctx, 3)
    assert request_storage.get_store() is None
