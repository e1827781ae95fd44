"""Context through a real Redis broker into a real Celery worker (prefork and threads pools)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections import Counter
from types import ModuleType
from typing import Any

import pytest
import redis
from celery import chain

from asynclocal import RequestContext, request_storage
from asynclocal.integrations.celery import ContextNotSerializableError
from tests.queues.conftest import CeleryWorker
from tests.queues.stores import local_only, tenant
from tests.support.servers import run_uvicorn

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(120)]


def _request(i: int) -> RequestContext:
    ctx = RequestContext(f"req-{i}-{random.getrandbits(32):08x}", method="POST", path="/orders")
    ctx.set("plan", f"plan-{i}")
    ctx.set("secret", "never-sent")  # not in install(fields=...): must not travel
    return ctx


def _assert_in_request(seen: dict[str, Any], ctx: RequestContext, i: int) -> None:
    assert seen["request_id"] == seen["task_id"]
    assert seen["parent"] == ctx.request_id
    assert seen["root"] == ctx.request_id
    assert seen["trace_id"] == ctx.trace_id
    assert seen["plan"] == f"plan-{i}"
    assert seen["tenant"] == {"tenant": i}
    assert seen["local"] is None
    assert seen["method"] == "TASK"


def _assert_no_request(seen: dict[str, Any]) -> None:
    assert seen["request_id"] == seen["task_id"]
    assert seen["root"] == seen["task_id"]
    assert seen["parent"] is None
    assert seen["plan"] is None
    assert seen["tenant"] is None
    assert seen["local"] is None


def test_many_requests_each_task_sees_its_own_context(
    celery_worker: CeleryWorker, celery_app: ModuleType
) -> None:
    """40 interleaved requests and 20 context-free publishers; every task leaves junk behind."""
    queue = celery_worker.queue
    published: list[tuple[int | None, RequestContext | None, Any]] = []

    async def handler(i: int) -> None:
        ctx = request_storage.get_store()
        local_only.enter_with("request-local")  # a plain storage: never travels
        for _ in range(2):
            await asyncio.sleep(random.uniform(0, 0.005))
            delay = random.uniform(0, 0.01)
            published.append((i, ctx, celery_app.record.apply_async((delay,), queue=queue)))

    async def no_request() -> None:
        await asyncio.sleep(random.uniform(0, 0.005))
        published.append((None, None, celery_app.record.apply_async((0.0,), queue=queue)))

    async def main() -> None:
        jobs = []
        for i in range(40):
            ctx = _request(i)
            jobs.append(request_storage.run(ctx, tenant.run, {"tenant": i}, handler, i))
            if i % 2 == 0:
                jobs.append(no_request())
        await asyncio.gather(*(asyncio.ensure_future(j) for j in jobs))

    asyncio.run(main())
    assert len(published) == 100
    workers: Counter[str] = Counter()
    for i, ctx, result in published:
        seen = celery_worker.wait(result)
        assert seen["task_id"] == result.id
        if ctx is None:
            _assert_no_request(seen)
        else:
            assert i is not None
            _assert_in_request(seen, ctx, i)
        workers[seen["worker"]] += 1
    # The check is only meaningful if processes/threads were reused across tasks.
    assert max(workers.values()) > 1
    assert len(workers) <= (2 if celery_worker.pool == "prefork" else 3)


def test_chains_continue_the_causation_chain(
    celery_worker: CeleryWorker, celery_app: ModuleType
) -> None:
    """Each step's parent is the previous step (published by the worker); root stays."""
    queue = celery_worker.queue
    chains = []
    for i in range(8):
        ctx = _request(i)

        def publish() -> Any:
            return chain(*(celery_app.step.s().set(queue=queue) for _ in range(3))).apply_async()

        chains.append((i, ctx, request_storage.run(ctx, tenant.run, {"tenant": i}, publish)))
    for i, ctx, result in chains:
        steps = celery_worker.wait(result)
        assert len(steps) == 3
        assert steps[0]["parent"] == ctx.request_id
        for before, after in itertools.pairwise(steps):
            assert after["parent"] == before["task_id"]
        for seen in steps:
            assert seen["request_id"] == seen["task_id"]
            assert seen["root"] == ctx.request_id
            assert seen["trace_id"] == ctx.trace_id
            assert seen["tenant"] == {"tenant": i}
            assert seen["plan"] == f"plan-{i}"
            assert seen["local"] is None


def test_retries_see_the_context_the_task_was_published_with(
    celery_worker: CeleryWorker, celery_app: ModuleType, redis_server: str
) -> None:
    queue = celery_worker.queue
    runs = []
    for i in range(6):
        ctx = _request(i)
        task = celery_app.flaky if i % 2 else celery_app.auto_flaky  # manual / autoretry_for
        result = request_storage.run(
            ctx, tenant.run, {"tenant": i}, task.apply_async, (2,), queue=queue
        )
        runs.append((i, ctx, result))
    client = redis.Redis.from_url(f"{redis_server}/0")
    for i, ctx, result in runs:
        final = celery_worker.wait(result)
        attempts = [json.loads(a) for a in client.lrange(f"attempts:{result.id}", 0, -1)]
        assert [a["retries"] for a in attempts] == [0, 1, 2]
        assert final == attempts[-1]
        for seen in attempts:
            assert seen["task_id"] == result.id
            _assert_in_request(seen, ctx, i)  # the mutation of attempt n never reaches n + 1


def test_subtask_published_by_a_task_has_it_as_parent(
    celery_worker: CeleryWorker, celery_app: ModuleType
) -> None:
    queue = celery_worker.queue
    runs = []
    for i in range(6):
        ctx = _request(i)
        result = request_storage.run(
            ctx, tenant.run, {"tenant": i}, celery_app.spawn_child.apply_async, queue=queue
        )
        runs.append((i, ctx, result))
    for i, ctx, result in runs:
        parent = celery_worker.wait(result)
        _assert_in_request(parent, ctx, i)
        child = celery_worker.wait(celery_app.app.AsyncResult(parent["child_id"]))
        assert child["parent"] == parent["task_id"]
        assert child["root"] == ctx.request_id
        assert child["trace_id"] == ctx.trace_id
        assert child["tenant"] == {"tenant": i}
        assert child["plan"] == f"plan-{i}"


def test_unserialisable_store_fails_at_publish_and_sends_nothing(
    celery_app: ModuleType, redis_server: str
) -> None:
    queue = "q-never-consumed"
    client = redis.Redis.from_url(f"{redis_server}/0")
    with pytest.raises(ContextNotSerializableError, match=r"tests\.queues\.tenant"):
        tenant.run({"when": object()}, celery_app.record.apply_async, queue=queue)
    ctx = RequestContext("req-bad")
    ctx.set("plan", {1, 2})
    with pytest.raises(ContextNotSerializableError, match="'plan'"):
        request_storage.run(ctx, celery_app.record.apply_async, queue=queue)
    assert client.llen(queue) == 0


def test_malformed_or_foreign_headers_never_fail_the_task(
    celery_worker: CeleryWorker, celery_app: ModuleType
) -> None:
    """Messages from elsewhere: junk is ignored, unknown storages are skipped, the task runs."""
    raw_send = celery_app.app.send_task.__wrapped__  # bypasses install(): we write the header
    name = celery_app.record.name
    foreign = json.dumps(
        {
            "v": 1,
            "carrier": {"x-request-id": "up-1", "x-root-request-id": "root-1"},
            "stores": {"no.such.storage": 1, "tests.queues.tenant": {"tenant": "x"}},
        }
    )
    results = [
        raw_send(name, (0.0,), queue=celery_worker.queue, headers={"asynclocal": header})
        for header in ("{not json", json.dumps({"v": 99}), json.dumps([1, 2]), foreign)
    ]
    for result in results[:3]:
        _assert_no_request(celery_worker.wait(result))
    seen = celery_worker.wait(results[3])
    assert (seen["root"], seen["parent"]) == ("root-1", "up-1")
    assert seen["tenant"] == {"tenant": "x"}


async def _echo_headers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A second service: answers with the headers it received, as JSON."""
    assert scope["type"] == "http"
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    body = json.dumps(headers).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def test_request_task_subtask_outgoing_call_is_one_chain(
    celery_worker: CeleryWorker, celery_app: ModuleType
) -> None:
    """request -> task -> sub-task -> HTTP call: one root, parents link each hop, one trace."""
    with run_uvicorn(_echo_headers) as base_url:
        ctx = _request(7)
        result = request_storage.run(
            ctx,
            tenant.run,
            {"tenant": 7},
            celery_app.spawn_call.apply_async,
            (f"{base_url}/echo",),
            queue=celery_worker.queue,
        )
        task = celery_worker.wait(result)
        call = celery_worker.wait(celery_app.app.AsyncResult(task["child_id"]))
    _assert_in_request(task, ctx, 7)
    assert (call["parent"], call["root"]) == (task["task_id"], ctx.request_id)
    received = call["received"]
    assert received["x-request-id"] == call["task_id"]
    assert received["x-root-request-id"] == ctx.request_id
    assert ctx.trace_id is not None
    assert received["traceparent"].split("-")[1] == ctx.trace_id
