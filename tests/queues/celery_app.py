"""The Celery app and tasks run by the real worker subprocess (and published by the tests)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import Celery

from asynclocal.integrations.celery import install
from tests.queues.stores import CELERY_BROKER_ENV, dirty, local_only, redis_url, seen, tenant

app = Celery(
    "asynclocal_tests",
    broker=os.environ.get(CELERY_BROKER_ENV) or redis_url(0),
    backend=redis_url(0),
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=4,
)
install(app, fields=["plan"])

_redis: redis.Redis | None = None


def _client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(redis_url(0))
    return _redis


@app.task(bind=True)
def ping(self: Any) -> str:
    return "pong"


@app.task(bind=True)
def record(self: Any, delay: float = 0.0) -> dict[str, Any]:
    time.sleep(delay)
    result = seen(self.request.id)
    dirty(self.request.id)
    return result


@app.task(bind=True)
def step(self: Any, acc: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    # No dirty() here: the next step is published from this task's context as it
    # is left, so junk left in the request storage would become the next parent.
    result = [*(acc or []), seen(self.request.id)]
    local_only.enter_with(f"dirty-{self.request.id}")
    return result


@app.task(bind=True, max_retries=5)
def flaky(self: Any, fail_times: int) -> dict[str, Any]:
    attempt = {**seen(self.request.id), "retries": self.request.retries}
    _client().rpush(f"attempts:{self.request.id}", json.dumps(attempt))
    if self.request.retries < fail_times:
        store = tenant.get_store()
        if isinstance(store, dict):
            store["mutated_by_attempt"] = self.request.retries  # must not reach the retry
        raise self.retry(countdown=0)
    return attempt


@app.task(bind=True, autoretry_for=(RuntimeError,), max_retries=5, default_retry_delay=0)
def auto_flaky(self: Any, fail_times: int) -> dict[str, Any]:
    attempt = {**seen(self.request.id), "retries": self.request.retries}
    _client().rpush(f"attempts:{self.request.id}", json.dumps(attempt))
    if self.request.retries < fail_times:
        raise RuntimeError("fails on purpose")  # Celery retries it (autoretry_for)
    return attempt


@app.task(bind=True)
def call_echo(self: Any, url: str) -> dict[str, Any]:
    """An outgoing HTTP call from a task: the httpx integration sends this hop's ids."""
    import httpx

    from asynclocal.integrations.httpx import instrument

    with instrument(httpx.Client(), targets=["127.0.0.1"]) as client:
        received = client.get(url, timeout=10).json()
    return {**seen(self.request.id), "received": received}


@app.task(bind=True)
def spawn_call(self: Any, url: str) -> dict[str, Any]:
    child = call_echo.apply_async((url,), queue=self.request.delivery_info.get("routing_key"))
    return {**seen(self.request.id), "child_id": child.id}


@app.task(bind=True)
def spawn_child(self: Any) -> dict[str, Any]:
    child = record.apply_async((0.0,), queue=self.request.delivery_info.get("routing_key"))
    return {**seen(self.request.id), "child_id": child.id}
