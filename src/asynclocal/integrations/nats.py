"""NATS (``nats-py``): published messages carry the context in NATS headers.

Call `install()` in the publishing and the subscribing processes::

    from asynclocal.integrations import nats as al_nats

    al_nats.install()                     # or al_nats.install(fields=["plan"])

Guarantees:

* ``Client.publish`` (so also ``request`` and ``Msg.respond``) adds the
  current request's id, root id, ``traceparent``/``tracestate`` and baggage
  (`asynclocal.propagation.inject`) as NATS headers, unless the message
  already has them (the caller's values win), plus the encoded context
  (cross-process stores and the named app fields, as JSON) under
  ``asynclocal``. A value JSON cannot encode raises
  `ContextNotSerializableError` from ``publish``, naming it; nothing is sent.
  Outside any request (and with no cross-process store set) nothing is added.
* A callback given to ``Client.subscribe(..., cb=...)`` runs each message in
  a clean context holding only what that message carried: every storage shows
  its default except the carried cross-process stores, and
  `current_request()` is a new `RequestContext` (fresh ``request_id``, root id
  kept, ``parent_request_id`` = the publisher's request id, the same trace with
  a new span, ``method="NATS"``, ``path`` = the subject). Headers from a
  publisher without asynclocal are read as W3C / request id headers, validated
  like HTTP headers; invalid values are dropped, never echoed or logged.
* Subscriptions read without a callback (``sub.next_msg()``, ``sub.messages``)
  use ``with message_context(msg): ...`` for the same guarantee.

Subscriptions made before `install()` are not covered. Needs the ``nats`` extra.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

try:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.integrations.nats needs the 'nats' extra: pip install 'asynclocal[nats]'"
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
def message_context(msg: Msg) -> Iterator[RequestContext]:
    """Run the block in `msg`'s own clean context (see the module docstring); yield its request.

    Everything is put back when the block ends. Never raises because of the
    message's headers.
    """
    with message_scope(msg.headers, message_id=None, name=str(msg.subject), method="NATS") as ctx:
        yield ctx


def _wrap_callback(cb: Callable[[Msg], Awaitable[None]]) -> Callable[[Msg], Awaitable[None]]:
    @functools.wraps(cb)
    async def callback(msg: Msg) -> None:
        with message_context(msg):
            await cb(msg)

    return callback


def _patched_publish(original: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(original)
    async def publish(
        self: Any,
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        headers = message_headers(headers, _fields) or headers
        await original(self, subject, payload, reply, headers)

    return publish


def _patched_subscribe(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def subscribe(self: Any, subject: str, *args: Any, **kwargs: Any) -> Any:
        cb = kwargs.get("cb")
        # The client's own subscriptions (the reply inbox of request()) are not messages
        # for the app: their callbacks only hand replies to waiting requests.
        if cb is not None and getattr(cb, "__self__", None) is not self:
            kwargs["cb"] = _wrap_callback(cb)
        elif (
            len(args) >= 2
            and args[1] is not None
            and getattr(args[1], "__self__", None) is not self
        ):  # subscribe(subject, queue, cb, ...)
            args = (args[0], _wrap_callback(args[1]), *args[2:])
        return await original(self, subject, *args, **kwargs)

    return subscribe


_patches = Patches()


def install(*, fields: Iterable[str] = ()) -> None:
    """Carry the context in every NATS message published, restore it in every callback.

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
            _patches.install(
                [
                    (Client, "publish", _patched_publish(_patches.original(Client, "publish"))),
                    (
                        Client,
                        "subscribe",
                        _patched_subscribe(_patches.original(Client, "subscribe")),
                    ),
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
