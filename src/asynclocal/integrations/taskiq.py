"""taskiq: the sender's context travels with each task and is restored while it runs.

Add the middleware to the broker, in the module both the senders and the
workers import::

    from asynclocal.integrations.taskiq import AsyncLocalMiddleware

    broker = ListQueueBroker(url).with_middlewares(AsyncLocalMiddleware())

Guarantees (the same as the Celery and RQ integrations):

* ``task.kiq(...)`` encodes the current request's ids and trace, the stores of
  the storages created with ``cross_process=True`` and the named app fields
  as JSON into the message label ``asynclocal``. A value JSON cannot encode
  raises `ContextNotSerializableError` from ``kiq``, naming the storage or
  field; nothing is sent.
* The worker runs each message (async tasks, and sync tasks in its thread
  pool) in a clean context: every storage shows its default except the
  carried cross-process stores, and `current_request()` is a new
  `RequestContext` with ``request_id`` = the task id, root id kept,
  ``parent_request_id`` = the sender's request id, the same trace with a new
  span, ``method="TASK"``, ``path`` = the task name. Each message has its own
  asyncio task; what the context held before is put back after the task ran
  (``post_execute``), also for brokers that run tasks in the sender's task.
* A retry (`taskiq.SimpleRetryMiddleware`) sends the message again with the
  context it was first sent with. A task sent from a task continues the
  causation chain.

Needs the ``taskiq`` extra (``taskiq-redis`` for the Redis brokers).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

try:
    from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.integrations.taskiq needs the 'taskiq' extra: pip install 'asynclocal[taskiq]'"
    ) from exc

from ._queue import HEADER, Activation, ContextNotSerializableError, activate, capture, check_fields

__all__ = ["HEADER", "AsyncLocalMiddleware", "ContextNotSerializableError"]

_current: ContextVar[Activation | None] = ContextVar("asynclocal.taskiq.task", default=None)


class AsyncLocalMiddleware(TaskiqMiddleware):
    """Carries the sender's context into each task (see the module docstring).

    Args:
        fields: app fields of the current `RequestContext` (``ctx.get(name)``) to
            carry as JSON values. Secrets never travel unless named here.

    Raises:
        TypeError / ValueError: `fields` is not a list of names.
    """

    def __init__(self, *, fields: Iterable[str] = ()) -> None:
        super().__init__()
        self.fields = check_fields(fields, "AsyncLocalMiddleware")

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        if HEADER not in message.labels:  # a retry keeps the context it was sent with
            message.labels[HEADER] = capture(self.fields)
        return message

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        activation = activate(
            message.labels.get(HEADER),
            task_id=str(message.task_id),
            task_name=str(message.task_name),
        )
        activation.outer = _current.get()
        activation.set_var(_current, activation)
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        activation = _current.get()
        if activation is not None and activation.task_id == str(message.task_id):
            activation.undo()
