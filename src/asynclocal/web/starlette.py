"""Starlette (and FastAPI) setup: the ASGI middleware outermost, plus a `RequestRejected` handler.

Usage::

    from asynclocal.web.starlette import add_request_context

    app = Starlette(routes=[...])
    add_request_context(app, on_request=load_user)

`add_request_context` (also importable as `install`, its first name; it is
per app, not process-wide) places `asynclocal.web.asgi.RequestContextMiddleware`
*outside* Starlette's ``ServerErrorMiddleware``, so the framework's own 500
response (its debug page or your ``exception_handlers[500]``) goes out with the
id header, and registers an exception handler so `RequestRejected` raised in a
route answers with its status and headers.
``app.add_middleware(RequestContextMiddleware)`` works too; there the
middleware answers unhandled exceptions itself with a plain 500 carrying the
id, because Starlette's error page would bypass it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "asynclocal.web.starlette needs the 'starlette' extra: pip install 'asynclocal[starlette]'"
    ) from exc

from .._options import checked_options
from ..logging import AccessLog
from ..request._context import RequestRejected
from ..request._factory import OnRequest, RequestContextFactory
from ..request._ids import Network, RequestIdPolicy
from .asgi import ASGIApp, RequestContextMiddleware

__all__ = ["RequestContextMiddleware", "add_request_context", "install", "request_rejected_handler"]

_INSTALLED = "_asynclocal_request_context"


async def request_rejected_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler answering `RequestRejected` with its status, message, headers."""
    if not isinstance(exc, RequestRejected):  # pragma: no cover - registered for it only
        raise exc
    response = PlainTextResponse(exc.public_message, status_code=exc.status_code)
    for name, value in exc.headers:
        response.headers.append(name, value)
    return response


@checked_options
def add_request_context(
    app: Starlette,
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
) -> RequestContextMiddleware:
    """Give every request of `app` its context: `RequestContextMiddleware` outermost.

    It wraps the whole middleware stack (``ServerErrorMiddleware`` included, so
    Starlette's own 500 carries the id) and registers the `RequestRejected`
    handler. Options are those of `RequestContextMiddleware`. Per app: call it
    before the app serves its first request. Returns the middleware (its
    ``factory`` is shared). `install` is the same function under its first name.

    Raises:
        UnknownOptionError: an unknown keyword (a typo); the message lists the valid ones.
        TypeError: `app` is not a Starlette application, or an option has the wrong type.
        ConfigurationError: an option has an unusable value.
        RuntimeError: the app already started serving, or the context was already added.
    """
    if not isinstance(app, Starlette):
        raise TypeError(
            "add_request_context() needs a Starlette or FastAPI application, got "
            f"{type(app).__name__}; "
            "wrap other ASGI apps with RequestContextMiddleware(app)"
        )
    if app.middleware_stack is not None:
        raise RuntimeError(
            "add_request_context() must be called before the app serves its first request"
        )
    if getattr(app, _INSTALLED, None) is not None:
        raise RuntimeError("asynclocal's request context is already installed on this app")
    build = app.build_middleware_stack
    holder = RequestContextMiddleware(
        _not_built,
        factory=factory,
        on_request=on_request,
        continue_trace=continue_trace,
        policy=policy,
        header=header,
        generator=generator,
        validator=validator,
        trusted_proxies=trusted_proxies,
        reject_invalid=reject_invalid,
        reuse_request_id=reuse_request_id,
        access_log=access_log,
    )

    def build_middleware_stack() -> ASGIApp:
        holder.app = build()
        return holder

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    app.add_exception_handler(RequestRejected, request_rejected_handler)
    setattr(app, _INSTALLED, holder)
    return holder


#: The first name of `add_request_context` (kept: per-app, not process-wide).
install = add_request_context


async def _not_built(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
    raise RuntimeError("the Starlette middleware stack was not built yet")
