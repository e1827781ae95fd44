"""Starlette (and FastAPI) setup: the ASGI middleware outermost, plus a `RequestRejected` handler.

Usage::

    from asynclocal.web.starlette import install

    app = Starlette(routes=[...])
    install(app, on_request=load_user)

`install` places `asynclocal.web.asgi.RequestContextMiddleware` *outside*
Starlette's ``ServerErrorMiddleware``, so the framework's own 500 response
(its debug page or your ``exception_handlers[500]``) goes out with the id
header, and registers an exception handler so `RequestRejected` raised in a
route answers with its status and headers. ``app.add_middleware(RequestContextMiddleware)``
works too; there the middleware answers unhandled exceptions itself with a
plain 500 carrying the id, because Starlette's error page would bypass it.
"""

from __future__ import annotations

from typing import Any

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "asynclocal.web.starlette needs the 'starlette' extra: pip install 'asynclocal[starlette]'"
    ) from exc

from ..request._context import RequestRejected
from ..request._scope import RequestContextFactory
from .asgi import ASGIApp, RequestContextMiddleware

__all__ = ["RequestContextMiddleware", "install", "request_rejected_handler"]

_INSTALLED = "_asynclocal_request_context"


async def request_rejected_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler answering `RequestRejected` with its status, message, headers."""
    if not isinstance(exc, RequestRejected):  # pragma: no cover - registered for it only
        raise exc
    response = PlainTextResponse(exc.public_message, status_code=exc.status_code)
    for name, value in exc.headers:
        response.headers.append(name, value)
    return response


def install(
    app: Starlette, *, factory: RequestContextFactory | None = None, **options: Any
) -> RequestContextMiddleware:
    """Wrap `app`'s whole middleware stack in `RequestContextMiddleware` (outermost).

    Options are those of `RequestContextMiddleware`. Call it before the app
    serves its first request. Returns the middleware (its ``factory`` is shared).

    Raises:
        TypeError: `app` is not a Starlette application.
        RuntimeError: the app already started serving, or `install` was already called.
    """
    if not isinstance(app, Starlette):
        raise TypeError(
            f"install() needs a Starlette or FastAPI application, got {type(app).__name__}; "
            "wrap other ASGI apps with RequestContextMiddleware(app)"
        )
    if app.middleware_stack is not None:
        raise RuntimeError("install() must be called before the app serves its first request")
    if getattr(app, _INSTALLED, None) is not None:
        raise RuntimeError("asynclocal's request context is already installed on this app")
    build = app.build_middleware_stack
    holder = RequestContextMiddleware(_not_built, factory=factory, **options)

    def build_middleware_stack() -> ASGIApp:
        holder.app = build()
        return holder

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    app.add_exception_handler(RequestRejected, request_rejected_handler)
    setattr(app, _INSTALLED, holder)
    return holder


async def _not_built(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
    raise RuntimeError("the Starlette middleware stack was not built yet")
