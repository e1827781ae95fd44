"""Job functions run by the real `rq worker` subprocesses (enqueued by the tests)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis
from rq import Queue, get_current_job

from asynclocal.integrations.rq import ContextJob
from tests.queues.stores import dirty, redis_url, seen, tenant


class PlanJob(ContextJob):
    """The app's job class: carries the request's "plan" field too."""

    asynclocal_fields = ("plan",)


def _job_id() -> str:
    job = get_current_job()
    assert job is not None
    return str(job.id)


def record() -> dict[str, Any]:
    result = seen(_job_id())
    dirty(_job_id())
    return result


async def async_record() -> dict[str, Any]:
    await asyncio.sleep(0)
    result = await asyncio.create_task(_seen_in_task())
    dirty(_job_id())
    return result


async def _seen_in_task() -> dict[str, Any]:
    return seen(_job_id())


def flaky(fail_times: int) -> dict[str, Any]:
    job = get_current_job()
    assert job is not None
    client = redis.Redis.from_url(redis_url(1))
    attempt = seen(str(job.id))
    count = client.rpush(f"rq-attempts:{job.id}", json.dumps(attempt))
    if count <= fail_times:
        store = tenant.get_store()
        if isinstance(store, dict):
            store["mutated_by_attempt"] = count  # must not reach the retry
        raise RuntimeError(f"attempt {count} fails on purpose")
    return attempt


def spawn_child() -> dict[str, Any]:
    job = get_current_job()
    assert job is not None
    queue = Queue(job.origin, connection=job.connection, job_class=type(job))
    child = queue.enqueue(record)
    return {**seen(str(job.id)), "child_id": child.id}
