"""Pure ASGI request-context middleware (Starlette, FastAPI, Litestar, Django ASGI, any ASGI app).

Usage::

    from asynclocal.web.asgi import RequestContextMiddleware

    app = RequestContextMiddleware(app)                 # any ASGI app, outermost
    starlette_app.add_middleware(RequestContextMiddleware, header="X-Request-ID")

Guarantees, for ``http`` and ``websocket`` scopes (``lifespan`` and others pass
through untouched):

* the `RequestContext` is visible to the whole request, including streaming
  bodies and async-generator responses until their last chunk; leaving it
  never raises "created in a different Context";
* the response carries the final request id in the id header, plus
  ``ctx.response_headers()``, added when the response starts (also to the
  headers of ``websocket.accept``);
* `RequestRejected` (raised by ``on_request`` or by the app before the
  response started) becomes its ``status_code`` with ``public_message`` and
  its ``headers``;
* an unhandled exception before the response started is answered with a 500
  carrying the id header, then re-raised so the server logs it (with a
  ``request_id=...`` note on Python 3.11+, so the traceback names the request). Wrapping
  the whole app (outermost) lets the framework's own 500 page through
  instead, still with the id: see `asynclocal.web.starlette.install`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from inspect import isawaitable
from typing import Any
from weakref import ref as _weakref

from .._storage import _reset_or_restore
from ..request import _context as _context_module
from ..request._context import RequestRejected, request_storage
from ..request._ids import InvalidRequestId
from ..request._scope import (
    SERVER_KEY,
    RequestContextFactory,
    factory_or_options,
    served_by_outer,
)

__all__ = ["ASGIApp", "RequestContextMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_START_TYPES = frozenset(
    {"http.response.start", "websocket.accept", "websocket.http.response.start"}
)
_TEXT_PLAIN = (b"content-type", b"text/plain; charset=utf-8")


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def _send_plain(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_TEXT_PLAIN, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Give every HTTP and WebSocket request its `RequestContext` (pure ASGI).

    Args:
        app: the ASGI app to wrap.
        factory: a `RequestContextFactory` to share; otherwise one is built from
            `options`: ``on_request`` (hook filling ``ctx.user``/``ctx.access_token``,
            sync or async), ``header`` (default ``X-Request-ID``), ``generator``,
            ``validator``, ``trusted_proxies``, ``reject_invalid``.

    Raises:
        TypeError: `app` is not callable, or an option is invalid.
    """

    def __init__(
        self, app: ASGIApp, *, factory: RequestContextFactory | None = None, **options: Any
    ) -> None:
        if not callable(app):
            raise TypeError(
                f"RequestContextMiddleware(app) needs an ASGI app, got {type(app).__name__}"
            )
        self.app = app
        self.factory = factory_or_options(factory, options)
        self._header = self.factory.policy.header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (kind != "http" and kind != "websocket") or (
            SERVER_KEY in scope and served_by_outer(scope)
        ):
            # Not a request, or an outer RequestContextMiddleware already serves it.
            await self.app(scope, receive, send)
            return
        factory = self.factory
        try:
            ctx = factory.from_asgi(scope)
        except InvalidRequestId as exc:
            await self._reject_invalid(kind, send, exc)
            return
        scope[SERVER_KEY] = _weakref(ctx)  # mark_served(scope, ctx), inlined
        started = False
        header = self._header

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if not started:
                kind = message["type"]
                if kind in _START_TYPES:
                    started = True
                    # A new list: the app's own list may be reused (a cached response).
                    # The id header is ours: one the app set is replaced, not doubled.
                    # (A plain loop: cheaper than a comprehension on Python 3.11.)
                    headers = []
                    for pair in message.get("headers", ()):
                        if pair[0].lower() != header:
                            headers.append(pair)
                    headers.append((header, ctx.request_id.encode()))
                    if ctx._response_headers or ctx._response_callbacks:
                        headers.extend(_encode(ctx.response_headers()))
                    message["headers"] = headers
                elif kind == "websocket.close":
                    started = True
            await send(message)

        var = request_storage._var  # .context_var without the property call
        token = var.set(ctx)
        try:
            try:
                for initializer in _context_module._initializers:
                    initializer(ctx)
                hook = factory.on_request
                if hook is not None:
                    pending = hook(ctx)
                    if pending is not None and isawaitable(pending):
                        await pending
                await self.app(scope, receive, send_with_id)
            except RequestRejected as exc:
                if started:
                    raise
                if kind == "websocket":
                    await send_with_id({"type": "websocket.close", "code": 1008})
                    return
                await _send_plain(
                    send_with_id, exc.status_code, exc.public_message, _encode(list(exc.headers))
                )
            except Exception as exc:
                # The server logs the traceback after the context is gone: name the request.
                if hasattr(exc, "add_note"):
                    exc.add_note(f"request_id={ctx.request_id}")
                if started or kind != "http":
                    raise
                await _send_plain(send_with_id, 500, HTTPStatus(500).phrase, [])
                raise
        finally:
            # Set and reset happen in this coroutine, so normally in one Context;
            # _reset_or_restore covers being resumed from another one.
            try:
                var.reset(token)
            except ValueError:
                _reset_or_restore(var, token, ctx, None)

    async def _reject_invalid(self, kind: str, send: Send, exc: InvalidRequestId) -> None:
        fresh = self.factory.policy.new_id()
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _send_plain(
            send, exc.status_code, exc.public_message, [(self._header, fresh.encode("latin-1"))]
        )
