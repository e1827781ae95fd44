"""Litestar: the pure ASGI middleware plus a `RequestRejected` exception handler.

Usage::

    from litestar import Litestar
    from asynclocal.web.litestar import EXCEPTION_HANDLERS, wrap

    app = wrap(Litestar(route_handlers=[...], exception_handlers={**EXCEPTION_HANDLERS}))

`wrap` puts `asynclocal.web.asgi.RequestContextMiddleware` around the whole
application, so every response (404s for unknown paths and Litestar's own
500s included) carries the id header; ``ctx.route`` is Litestar's path
template (``/items/{item_id}``). As a route-level middleware instead
(``middleware=[middleware()]``) it only sees requests that matched a route.
`EXCEPTION_HANDLERS` answers `RequestRejected` with its status and headers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, cast

try:
    from litestar import Litestar, MediaType, Request, Response
    from litestar.middleware import DefineMiddleware
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "asynclocal.web.litestar needs the 'litestar' extra: pip install 'asynclocal[litestar]'"
    ) from exc

from .._options import checked_options
from ..logging import AccessLog
from ..request._context import RequestRejected
from ..request._factory import OnRequest, RequestContextFactory, build_factory
from ..request._ids import Network, RequestIdPolicy
from ..request._rejected import joined_rejection_headers
from .asgi import ASGIApp, RequestContextMiddleware

__all__ = ["EXCEPTION_HANDLERS", "middleware", "request_rejected_handler", "wrap"]


def request_rejected_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
    """Litestar exception handler answering `RequestRejected` with its status, message, headers.

    Repeated header names are joined with ``", "`` (Litestar keeps one value per name).
    """
    if not isinstance(exc, RequestRejected):  # pragma: no cover - registered for it only
        raise exc
    return Response(
        exc.public_message,
        status_code=exc.status_code,
        media_type=MediaType.TEXT,
        headers=joined_rejection_headers(exc) if exc.headers else None,
    )


#: ``exception_handlers={**EXCEPTION_HANDLERS}`` for `Litestar(...)`.
EXCEPTION_HANDLERS: dict[type[Exception], Any] = {RequestRejected: request_rejected_handler}


@checked_options
def wrap(
    app: Litestar,
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
    """`app` wrapped in `RequestContextMiddleware` (options as for that class).

    Raises:
        UnknownOptionError: an unknown keyword (a typo); the message lists the valid ones.
        TypeError: `app` is not a Litestar application, or an option has the wrong type.
        ConfigurationError: an option has an unusable value.
    """
    if not isinstance(app, Litestar):
        raise TypeError(f"wrap() needs a Litestar application, got {type(app).__name__}")
    return RequestContextMiddleware(
        cast(ASGIApp, app),
        factory=build_factory(
            factory,
            "wrap()",
            on_request=on_request,
            continue_trace=continue_trace,
            policy=policy,
            header=header,
            generator=generator,
            validator=validator,
            trusted_proxies=trusted_proxies,
            reject_invalid=reject_invalid,
            reuse_request_id=reuse_request_id,
        ),
        access_log=access_log,
    )


@checked_options
def middleware(
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
) -> DefineMiddleware:
    """A route-level ``DefineMiddleware`` for Litestar's ``middleware=[...]`` (same options).

    Raises:
        UnknownOptionError: an unknown keyword (a typo); the message lists the valid ones.
        ConfigurationError / TypeError: an option is unusable.
    """
    built = build_factory(
        factory,
        "middleware()",
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
    return DefineMiddleware(
        cast(Any, RequestContextMiddleware), factory=built, access_log=AccessLog.resolve(access_log)
    )
