"""The request an unhandled exception escaped from, for the server's log record of it.

A server logs a failed request's traceback ("Exception in ASGI application",
"Error handling request") after the middleware has left the request's
context. The middleware marks the exception with its request on the way out;
the logging integrations read the mark from the record's ``exc_info`` when no
request is current, so that record carries the failed request's ids. Nothing
else changes: the next request in the same task or thread sees no context.
"""

from __future__ import annotations

from typing import Any

from ._context import RequestContext

__all__ = ["failed_request", "mark_failed_request"]

_ATTR = "__asynclocal_request__"


def mark_failed_request(exc: BaseException, ctx: RequestContext) -> None:
    """Remember on `exc` that it escaped from the request `ctx` (the innermost mark wins).

    Never raises (an exception type that refuses attributes is left unmarked).
    """
    try:
        if _ATTR not in vars(exc):
            setattr(exc, _ATTR, ctx)
    except Exception:
        return


def failed_request(exc_info: Any) -> RequestContext | None:
    """The request `exc_info` (an exception or a ``sys.exc_info()`` tuple) escaped from."""
    exc = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else exc_info
    if not isinstance(exc, BaseException):
        return None
    try:
        ctx = vars(exc).get(_ATTR)
    except TypeError:
        return None
    return ctx if isinstance(ctx, RequestContext) else None
