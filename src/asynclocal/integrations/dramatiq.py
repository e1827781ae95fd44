"""Dramatiq: the sender's context travels with each message and is restored while it runs.

Add the middleware to the broker, in the module both the senders and the
workers import::

    from asynclocal.integrations.dramatiq import AsyncLocalMiddleware

    broker = RedisBroker(url=...)
    broker.add_middleware(AsyncLocalMiddleware())      # or AsyncLocalMiddleware(fields=["plan"])

Guarantees (the same as the Celery and RQ integrations):

* When a message is enqueued (``actor.send``, ``send_with_options``,
  pipelines, groups), the current request's ids and trace, the stores of the
  storages created with ``cross_process=True`` and the named app fields are
  encoded as JSON into ``message.options["asynclocal"]``. A value JSON cannot
  encode raises `ContextNotSerializableError` from the send, naming the
  storage or field; nothing is enqueued.
* A worker thread runs each message in a clean context: every storage shows
  its default except the carried cross-process stores, and
  `current_request()` is a new `RequestContext` with ``request_id`` = the
  message id, root id kept, ``parent_request_id`` = the sender's request id,
  the same trace with a new span, ``method="TASK"``, ``path`` = the actor name.
  Afterwards everything is put back, so the thread never runs a message with a
  previous message's stores.
* A retry re-enqueues the message with the context it was first sent with, so
  every attempt sees the same ids and stores. A message sent from inside an
  actor continues the causation chain.

Synchronous actors only: Dramatiq runs ``async def`` actors on its own event
loop thread, outside the worker thread's context. Needs the ``dramatiq`` extra.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

try:
    import dramatiq
    from dramatiq.middleware import Middleware, MiddlewareError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.integrations.dramatiq needs the 'dramatiq' extra: "
        "pip install 'asynclocal[dramatiq]'"
    ) from exc

from ._queue import HEADER, Activation, ContextNotSerializableError, activate, capture, check_fields

__all__ = ["HEADER", "AsyncLocalMiddleware", "ContextNotSerializableError"]

_current: ContextVar[Activation | None] = ContextVar("asynclocal.dramatiq.message", default=None)


class _NotSent(ContextNotSerializableError, MiddlewareError):
    """Lets the error through Dramatiq's middleware guard (it re-raises MiddlewareError only)."""


class AsyncLocalMiddleware(Middleware):
    """Carries the sender's context into each message (see the module docstring).

    Args:
        fields: app fields of the current `RequestContext` (``ctx.get(name)``) to
            carry as JSON values. Secrets never travel unless named here.

    Raises:
        TypeError / ValueError: `fields` is not a list of names.
    """

    def __init__(self, *, fields: Iterable[str] = ()) -> None:
        self.fields = check_fields(fields, "AsyncLocalMiddleware")

    def before_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        if HEADER in message.options:  # a retry (or a re-send): the context it was sent with
            return
        try:
            message.options[HEADER] = capture(self.fields)
        except ContextNotSerializableError as exc:
            raise _NotSent(str(exc)) from exc

    def before_process_message(self, broker: Any, message: Any) -> None:
        options = message.options if isinstance(message.options, dict) else {}
        activation = activate(
            options.get(HEADER),
            task_id=str(message.message_id),
            task_name=str(message.actor_name),
        )
        activation.set_var(_current, activation)

    def _finish(self, message: Any) -> None:
        activation = _current.get()
        if activation is not None and activation.task_id == str(message.message_id):
            activation.undo()

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        self._finish(message)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self._finish(message)


# Referenced so that the module fails at import when the extra is incomplete.
_ = dramatiq.Message
