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

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http import HTTPStatus
from typing import Any
from weakref import ref as _weakref

from .._options import checked_options
from ..logging import AccessLog
from ..request._context import RequestContext, RequestRejected, request_storage
from ..request._factory import (
    SERVER_KEY,
    OnRequest,
    RequestContextFactory,
    build_factory,
    leave_request,
    served_by_outer,
)
from ..request._failed import mark_failed_request
from ..request._ids import InvalidRequestId, Network, RequestIdPolicy

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


def _target(scope: Scope) -> str:
    query = scope.get("query_string")
    path: str = scope.get("path", "")
    return f"{path}?{query.decode('latin-1')}" if query else path


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
        factory: a `RequestContextFactory` to share; otherwise one is built from the
            other options, which are those of `RequestContextFactory`:
        on_request: hook filling ``ctx.user``/``ctx.access_token``, sync or async.
        continue_trace: continue the caller's trace and causation chain (None: the
            process-wide default, on).
        policy: a `RequestIdPolicy`, or its options: ``header`` (default
            ``X-Request-ID``), ``generator``, ``validator``, ``trusted_proxies``,
            ``reject_invalid``, ``reuse_request_id``.
        access_log: write one access line per HTTP request when it completes
            (True: the ``asynclocal.access`` logger; or a logger name, a
            ``logging.Logger``, an `asynclocal.logging.AccessLog`). Default off.

    Raises:
        UnknownOptionError: an unknown keyword (a typo); the message lists the valid ones.
        ConfigurationError: an option has an unusable value.
        TypeError: `app` is not callable, or an option has the wrong type.
    """

    @checked_options
    def __init__(
        self,
        app: ASGIApp,
        *,
        factory: RequestContextFactory | None = None,
        on_request: OnRequest | None = None,
        continue_trace: bool | None = None,
        policy: RequestIdPolicy | None = None,
        header: str | None = None,
        generator: Callable[[], str] | None = None,
        validator: Callable[[str], bool] | None = None,
        trusted_proxies: Iterable[str | Network] | None = None,
        reject_invalid: bool | None = None,
        reuse_request_id: bool | None = None,
        access_log: bool | str | logging.Logger | AccessLog | None = None,
    ) -> None:
        if not callable(app):
            raise TypeError(
                f"RequestContextMiddleware(app) needs an ASGI app, got {type(app).__name__}"
            )
        self.app = app
        self._access = AccessLog.resolve(access_log)
        self.factory = build_factory(
            factory,
            "RequestContextMiddleware()",
            policy=policy,
            on_request=on_request,
            continue_trace=continue_trace,
            header=header,
            generator=generator,
            validator=validator,
            trusted_proxies=trusted_proxies,
            reject_invalid=reject_invalid,
            reuse_request_id=reuse_request_id,
        )
        self._header = self.factory.policy.header_bytes
        self._var = request_storage.context_var

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
        meter = None
        if self._access is not None and kind == "http":
            meter = self._access.start(scope["method"], _target(scope))
            send = meter.wrap_asgi_send(send)
        started = False
        header = self._header
        header_length = len(header)

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if not started:
                kind = message["type"]
                if kind in _START_TYPES:
                    # A new list: the app's own list may be reused (a cached response).
                    # The id header is ours: one the app set is replaced, not doubled.
                    # (A plain loop: cheaper than a comprehension on Python 3.11.)
                    headers = []
                    for pair in message.get("headers", ()):
                        name = pair[0]
                        if len(name) != header_length or name.lower() != header:
                            headers.append(pair)
                    headers.append((header, ctx.request_id.encode()))
                    headers.extend(factory.extra_asgi_headers(ctx))
                    message["headers"] = headers
                    # Only now: had building the headers failed, the 500 below must
                    # still be sendable, with the id.
                    started = True
                elif kind == "websocket.close":
                    started = True
            await send(message)

        var = self._var
        token = var.set(ctx)  # enter_request(ctx), inlined
        try:
            try:
                pending = factory.start(ctx)
                if pending is not None:
                    await pending
                await self.app(scope, receive, send_with_id)
            except RequestRejected as exc:
                if started:
                    raise
                if kind == "websocket":
                    await send_with_id({"type": "websocket.close", "code": 1008})
                    return
                await _send_plain(
                    send, exc.status_code, exc.public_message, self._own_headers(ctx, exc.headers)
                )
            except Exception as exc:
                # The server logs the traceback after the context is gone: name the
                # request, in the traceback and for the log record's request fields.
                mark_failed_request(exc, ctx)
                if hasattr(exc, "add_note"):
                    exc.add_note(f"request_id={ctx.request_id}")
                if started or kind != "http":
                    raise
                await _send_plain(send, 500, HTTPStatus(500).phrase, self._own_headers(ctx, ()))
                raise
        finally:
            if meter is not None:
                meter.finish(ctx)
            try:
                var.reset(token)
            except ValueError:  # resumed in another context: put the old value back
                leave_request(token, ctx)

    def _own_headers(
        self, ctx: RequestContext, extra: Iterable[tuple[str, str]]
    ) -> list[tuple[bytes, bytes]]:
        # The id header always; the app's response headers when they encode (they
        # are validated when added, so they do), never at the cost of the id.
        own = self._header
        headers = [pair for pair in _encode(list(extra)) if pair[0] != own]
        headers.append((own, ctx.request_id.encode()))
        try:
            headers.extend(self.factory.extra_asgi_headers(ctx))
        except Exception:  # a broken extra header must not lose the 500's id
            pass
        return headers

    async def _reject_invalid(self, kind: str, send: Send, exc: InvalidRequestId) -> None:
        fresh = self.factory.policy.new_id()
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _send_plain(
            send, exc.status_code, exc.public_message, [(self._header, fresh.encode("latin-1"))]
        )
