"""A Celery app wired as docs/logging.md says: the worker's own loggers and the
tasks' lines go through one JSON handler, each task line with its ids."""

from __future__ import annotations

import logging
import logging.config
import time
from typing import Any

from celery import Celery, signals

from asynclocal.integrations.celery import install
from asynclocal.logging import logging_config
from tests.queues.stores import redis_url

app = Celery("asynclocal_logging_tests", broker=redis_url(0), backend=redis_url(0))
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,  # keep Celery's hands off the root logger
)
install(app)
log = logging.getLogger("tests.tasks")


@signals.setup_logging.connect
def _configure_logging(**_: Any) -> None:
    # Connecting to setup_logging makes Celery skip its own logging setup.
    logging.config.dictConfig(logging_config(json=True))


@app.task(bind=True)
def ping(self: Any) -> str:
    return "pong"


@app.task(bind=True)
def work(self: Any, n: int, delay: float) -> str:
    log.info("working on %s", n)  # no extra=: the ids come from the context
    time.sleep(delay)
    log.warning("done with %s password=%s", n, "hunter2secret")
    return str(self.request.id)
