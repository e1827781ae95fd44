"""FastAPI: the ASGI middleware plus a dependency that injects the `RequestContext`.

Usage::

    from fastapi import FastAPI
    from asynclocal.web.fastapi import RequestContextDep, add_request_context

    app = FastAPI()
    add_request_context(app, on_request=load_user)   # outermost + RequestRejected handler

    @app.get("/payments/{payment_id}")
    async def payment(payment_id: str, ctx: RequestContextDep) -> dict[str, str]:
        return {"request_id": ctx.request_id, "route": ctx.route}

The dependency returns the same object `asynclocal.current_request()` returns
anywhere in the request; without the middleware it raises `NoRequestContext`
(a 500) whose message says what to install.
"""

from __future__ import annotations

from typing import Annotated

try:
    from fastapi import Depends
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "asynclocal.web.fastapi needs the 'fastapi' extra: pip install 'asynclocal[fastapi]'"
    ) from exc

from ..request._context import RequestContext, current_request
from .asgi import RequestContextMiddleware
from .starlette import add_request_context, install, request_rejected_handler

__all__ = [
    "RequestContextDep",
    "RequestContextMiddleware",
    "add_request_context",
    "get_request_context",
    "install",
    "request_rejected_handler",
]


def get_request_context() -> RequestContext:
    """FastAPI dependency: the current request's `RequestContext`.

    Raises:
        NoRequestContext: the request middleware is not installed.
    """
    return current_request()


#: ``ctx: RequestContextDep`` in a path operation or dependency injects the context.
RequestContextDep = Annotated[RequestContext, Depends(get_request_context)]
