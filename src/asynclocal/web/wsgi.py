"""WSGI request-context middleware (Flask, Django WSGI, Pyramid, Bottle, any WSGI app).

Usage::

    from asynclocal.web.wsgi import RequestContextMiddleware

    application = RequestContextMiddleware(application, on_request=load_user)

Guarantees:

* each request runs in its own copy of the context, so requests served by
  the same worker thread (waitress, gunicorn ``gthread``, mod_wsgi) never see
  each other's stores, and nothing the request sets leaks into the thread;
* the context stays visible while the server iterates a streamed
  (generator) body, until ``close()``;
* every response carries the request id header and
  ``ctx.response_headers()``, added when ``start_response`` is called;
* `RequestRejected` becomes its ``status_code`` with ``public_message`` and
  its ``headers``; an
  unhandled exception before the response started is logged (logger
  ``asynclocal.web``, inside the request's context) and answered with a 500
  carrying the id header.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any

from .._options import checked_options
from ..logging import AccessLog, AccessMeter
from ..request._context import RequestContext, RequestRejected, request_storage
from ..request._factory import (
    SERVER_KEY,
    OnRequest,
    RequestContextFactory,
    build_factory,
    mark_served,
    served_by_outer,
)
from ..request._ids import InvalidRequestId, Network, RequestIdPolicy

__all__ = ["RequestContextMiddleware", "StartResponse", "WSGIApp"]

StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

logger = logging.getLogger("asynclocal.web")

_TEXT_PLAIN = ("Content-Type", "text/plain; charset=utf-8")


def _target(environ: dict[str, Any]) -> str:
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Error"


class _BodyInContext:
    """The app's response iterable, iterated and closed inside the request's context."""

    __slots__ = ("_close", "_context", "_iterator")

    def __init__(self, context: contextvars.Context, result: Iterable[bytes]) -> None:
        self._context = context
        self._iterator: Iterator[bytes] = context.run(iter, result)
        self._close: Callable[[], object] | None = getattr(result, "close", None)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        close, self._close = self._close, None
        if close is not None:
            self._context.run(close)


class RequestContextMiddleware:
    """Give every WSGI request its `RequestContext`.

    Args:
        app: the WSGI app to wrap.
        factory: a `RequestContextFactory` to share; otherwise one is built from the
            other options, those of `RequestContextFactory` (``on_request`` must be a
            plain function here).
        access_log: write one access line per request when the server closes its
            body (True: the ``asynclocal.access`` logger; or a logger name, a
            ``logging.Logger``, an `asynclocal.logging.AccessLog`). Default off.

    Raises:
        UnknownOptionError: an unknown keyword (a typo); the message lists the valid ones.
        ConfigurationError: an option has an unusable value.
        TypeError: `app` is not callable, or an option has the wrong type.
    """

    @checked_options
    def __init__(
        self,
        app: WSGIApp,
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
                f"RequestContextMiddleware(app) needs a WSGI app, got {type(app).__name__}"
            )
        self.app = app
        self._access = AccessLog.resolve(access_log)
        self.factory = build_factory(
            factory,
            "RequestContextMiddleware()",
            on_request=on_request,
            continue_trace=continue_trace,
            policy=policy,
            header=header,
            generator=generator,
            validator=validator,
            trusted_proxies=trusted_proxies,
            reject_invalid=reject_invalid,
            reuse_request_id=reuse_request_id,
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if SERVER_KEY in environ and served_by_outer(environ):  # an outer one serves it
            return self.app(environ, start_response)
        factory = self.factory
        try:
            ctx = factory.from_environ(environ)
        except InvalidRequestId as exc:
            body = exc.public_message.encode("utf-8")
            start_response(
                _status_line(exc.status_code),
                [_TEXT_PLAIN, (factory.policy.header, factory.policy.new_id())],
            )
            return [body]
        mark_served(environ, ctx)
        context = contextvars.copy_context()
        meter = None
        if self._access is not None:
            meter = self._access.start(environ.get("REQUEST_METHOD", ""), _target(environ))
        result = context.run(self._serve, ctx, environ, start_response, meter)
        if meter is not None:
            return meter.wsgi_body(context, ctx, result)
        if type(result) is list:
            return result
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            return result  # a file needs no context, and keeps the server's sendfile path
        return _BodyInContext(context, result)

    def _serve(
        self,
        ctx: RequestContext,
        environ: dict[str, Any],
        start_response: StartResponse,
        meter: AccessMeter | None = None,
    ) -> Iterable[bytes]:
        request_storage.enter_with(ctx)  # a fresh copied context: nothing to restore
        factory = self.factory
        header = factory.policy.header_lower

        def start_with_id(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            # The id header is ours: one the app set is replaced, not doubled.
            headers = [h for h in headers if h[0].lower() != header]
            headers.extend(factory.response_headers(ctx))
            if meter is not None:
                meter.set_status(status)
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        try:
            factory.start_sync(ctx)
            return self.app(environ, start_with_id)
        except RequestRejected as exc:
            start_with_id(
                _status_line(exc.status_code), [_TEXT_PLAIN, *exc.headers], sys.exc_info()
            )
            return [exc.public_message.encode("utf-8")]
        except Exception:
            logger.exception("unhandled exception in WSGI app %s %r", ctx.method, ctx.path)
            start_with_id(_status_line(500), [_TEXT_PLAIN], sys.exc_info())
            return [b"Internal Server Error"]
