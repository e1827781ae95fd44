"""The Celery app of the task-chain tests (tests/queues/test_task_chain.py).

The worker subprocess imports this module: it installs the Celery integration, the
httpx integration with the loopback services as propagation targets, and a JSON log
file (``CHAIN_LOG_DIR``) for the worker's own lines.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx
from celery import Celery

from asynclocal import current_request
from asynclocal.integrations import httpx as al_httpx
from asynclocal.integrations.celery import install
from tests.queues.stores import redis_url, tenant

app = Celery("asynclocal_chain", broker=redis_url(0), backend=redis_url(0))
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
install(app, fields=["plan"])

log = logging.getLogger("chain.worker")
_log_dir = os.environ.get("CHAIN_LOG_DIR")
if _log_dir:  # only in the worker: the test process keeps its own logging
    from asynclocal.logging import JsonFormatter

    _handler = logging.FileHandler(os.path.join(_log_dir, "worker.jsonl"), mode="a")
    _handler.setFormatter(JsonFormatter())
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    al_httpx.install(targets=["127.0.0.1"])


def _seen() -> dict[str, Any]:
    ctx = current_request()
    return {
        "request_id": ctx.request_id,
        "root": ctx.root_request_id,
        "parent": ctx.parent_request_id,
        "trace_id": ctx.trace_id,
        "span_id": ctx.span_id,
        "plan": ctx.get("plan"),
        "tenant": tenant.get_store(),
    }


@app.task(bind=True)
def ping(self: Any) -> str:
    return "pong"


@app.task(bind=True)
def call_b(self: Any, b_url: str) -> dict[str, Any]:
    """Log, then call service B: the call must carry this task's hop of the chain."""
    log.info("task calling b")
    with httpx.Client() as client:
        answer = client.get(f"{b_url}/b", timeout=10).json()
    log.info("task done")
    return {"task_id": self.request.id, "task": _seen(), "b": answer}


def rq_call_b(b_url: str) -> dict[str, Any]:
    """An RQ job (run by `rq worker --job-class asynclocal.integrations.rq.ContextJob`)."""
    with al_httpx.instrument(httpx.Client(), targets=["127.0.0.1"]) as client:
        answer = client.get(f"{b_url}/b", timeout=10).json()
    return {"job": _seen(), "b": answer}
