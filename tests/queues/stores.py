"""Storages shared by the test publisher and the worker subprocesses (imported by both)."""

from __future__ import annotations

import os
import threading
from typing import Any

from asynclocal import AsyncLocalStorage, request_storage

#: Travels with tasks (JSON).
tenant: AsyncLocalStorage[Any] = AsyncLocalStorage(name="tests.queues.tenant", cross_process=True)
#: Never travels: a task must always see the default here.
local_only: AsyncLocalStorage[Any] = AsyncLocalStorage(name="tests.queues.local")

REDIS_URL_ENV = "ASYNCLOCAL_TEST_REDIS_URL"
#: An ``amqp://`` URL here runs the Celery tasks on RabbitMQ (tests/hops does).
CELERY_BROKER_ENV = "ASYNCLOCAL_TEST_CELERY_BROKER"


def redis_url(db: int) -> str:
    """The test Redis (started by tests/queues/conftest.py) with database `db`."""
    base = os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379")
    return f"{base.rstrip('/')}/{db}"


def seen(task_id: str) -> dict[str, Any]:
    """What the running task sees of its context, as JSON."""
    ctx = request_storage.get_store()
    return {
        "task_id": task_id,
        "request_id": None if ctx is None else ctx.request_id,
        "root": None if ctx is None else ctx.root_request_id,
        "parent": None if ctx is None else ctx.parent_request_id,
        "trace_id": None if ctx is None else ctx.trace_id,
        "plan": None if ctx is None else ctx.get("plan"),
        "method": None if ctx is None else ctx.method,
        "path": None if ctx is None else ctx.path,
        "tenant": tenant.get_store(),
        "local": local_only.get_store(),
        "worker": f"{os.getpid()}:{threading.get_ident()}",
    }


def dirty(task_id: str) -> None:
    """Leave junk in every storage, as a buggy task would: the next task must not see it."""
    from asynclocal import RequestContext

    tenant.enter_with({"dirty": task_id})
    local_only.enter_with(f"dirty-{task_id}")
    request_storage.enter_with(RequestContext(f"dirty-{task_id}"))
