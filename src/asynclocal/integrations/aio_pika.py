"""RabbitMQ with ``aio-pika``: published messages carry the context in AMQP headers.

Call `install()` in the publishing and the consuming processes::

    from asynclocal.integrations import aio_pika as al_aio_pika

    al_aio_pika.install()                 # or al_aio_pika.install(fields=["plan"])

Guarantees:

* ``Exchange.publish`` (the default exchange's too) adds the current request's
  id, root id, ``traceparent``/``tracestate`` and baggage
  (`asynclocal.propagation.inject`) as message headers, unless the message
  already has them (the caller's values win), plus the encoded context
  (cross-process stores and the named app fields, as JSON) under
  ``asynclocal``. A message that already carries ``asynclocal`` (published
  again, or dead-lettered and re-published) keeps it. A value JSON cannot
  encode raises `ContextNotSerializableError` from ``publish``, naming it;
  nothing is sent. Outside any request (and with no cross-process store set)
  nothing is added.
* A callback given to ``Queue.consume`` runs each message in a fresh context
  holding only what that message carried: every storage shows its default
  except the carried cross-process stores, and `current_request()` is a new
  `RequestContext`: ``request_id`` = the message's ``message_id`` when it is a
  valid request id (else a fresh id), root id kept, ``parent_request_id`` =
  the publisher's request id, the same trace with a new span,
  ``method="AMQP"``, ``path`` = the routing key. A redelivered message brings
  its headers again, so it runs in its own context again, never in the one of
  the consumer that saw it first. Headers from a publisher without asynclocal
  are read as W3C / request id headers, validated like HTTP headers.
* Messages read with ``Queue.iterator()`` or ``Queue.get()`` use
  ``with message_context(message): ...`` for the same guarantee.

Queues consumed before `install()` are not covered. Needs the ``aio-pika`` extra.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

try:
    import aio_pika
    from aio_pika.abc import AbstractIncomingMessage
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.integrations.aio_pika needs the 'aio-pika' extra: "
        "pip install 'asynclocal[aio-pika]'"
    ) from exc

from .._patching import Patches
from ..request import RequestContext
from ._hop import message_headers, message_scope
from ._queue import HEADER, ContextNotSerializableError, check_fields

__all__ = [
    "HEADER",
    "ContextNotSerializableError",
    "install",
    "installed",
    "message_context",
    "uninstall",
]

_fields: tuple[str, ...] = ()


@contextlib.contextmanager
def message_context(message: AbstractIncomingMessage) -> Iterator[RequestContext]:
    """Run the block in `message`'s own fresh context (see the module docstring).

    Yields the message's `RequestContext`; everything is put back when the
    block ends. Never raises because of the message's headers.
    """
    with message_scope(
        message.headers,
        message_id=message.message_id,
        name=str(message.routing_key or ""),
        method="AMQP",
    ) as ctx:
        yield ctx


def _wrap_callback(
    callback: Callable[[AbstractIncomingMessage], Awaitable[Any]],
) -> Callable[[AbstractIncomingMessage], Awaitable[Any]]:
    @functools.wraps(callback)
    async def consume(message: AbstractIncomingMessage) -> Any:
        with message_context(message):
            return await callback(message)

    return consume


def _patched_publish(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def publish(self: Any, message: Any, *args: Any, **kwargs: Any) -> Any:
        headers = message_headers(message.headers, _fields)
        if headers:
            message.headers = headers
        return await original(self, message, *args, **kwargs)

    return publish


def _patched_consume(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def consume(self: Any, callback: Any, *args: Any, **kwargs: Any) -> Any:
        return await original(self, _wrap_callback(callback), *args, **kwargs)

    return consume


_patches = Patches()


def install(*, fields: Iterable[str] = ()) -> None:
    """Carry the context in every message published, restore it in every consume callback.

    Idempotent: a second call only updates `fields`. `uninstall()` undoes it.

    Args:
        fields: app fields of the current `RequestContext` (``ctx.get(name)``) to
            carry as JSON values. Secrets never travel unless named here.
    """
    global _fields
    names = check_fields(fields, "install")
    with _patches.lock:
        _fields = names
        if not _patches.installed:
            publish = _patches.original(aio_pika.Exchange, "publish")
            consume = _patches.original(aio_pika.Queue, "consume")
            _patches.install(
                [
                    (aio_pika.Exchange, "publish", _patched_publish(publish)),
                    (aio_pika.Queue, "consume", _patched_consume(consume)),
                ]
            )


def uninstall() -> None:
    """Undo `install()`. Idempotent."""
    global _fields
    with _patches.lock:
        if _patches.uninstall():
            _fields = ()


def installed() -> bool:
    """Whether `install()` is in effect."""
    return _patches.installed
