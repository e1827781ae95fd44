"""aiohttp server middleware.

Usage::

    from aiohttp import web
    from asynclocal.web.aiohttp import setup

    app = web.Application()
    setup(app, on_request=load_user)      # middleware + header signal for streamed responses

    # or only the middleware, default options:
    from asynclocal.web.aiohttp import request_context_middleware
    app = web.Application(middlewares=[request_context_middleware])

Each request gets its `RequestContext` (with ``route`` from the matched
resource) for the whole handler. The id header and ``ctx.response_headers()``
go on every response, including aiohttp's ``HTTPException`` responses (404,
redirects), 500s from unhandled exceptions, and, with `setup`, responses the
handler streams itself with ``StreamResponse.prepare``. `RequestRejected`
answers with its status and headers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

try:
    from aiohttp import web
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "asynclocal.web.aiohttp needs the 'aiohttp' extra: pip install 'asynclocal[aiohttp]'"
    ) from exc

from .._options import checked_options
from ..logging import AccessLog
from ..request._context import RequestContext, RequestRejected, request_storage
from ..request._factory import OnRequest, RequestContextFactory, build_factory, join_headers
from ..request._ids import InvalidRequestId, Network, RequestIdPolicy

__all__ = ["make_middleware", "request_context_middleware", "setup"]

logger = logging.getLogger("asynclocal.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

_RequestKey: Any = getattr(web, "RequestKey", None)
_CTX_KEY: Any = (
    _RequestKey("asynclocal.request_context", RequestContext)
    if _RequestKey
    else "asynclocal.request_context"
)
_DONE_KEY: Any = (
    _RequestKey("asynclocal.headers_added", bool) if _RequestKey else "asynclocal.headers_added"
)


def _context(factory: RequestContextFactory, request: web.Request) -> RequestContext:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    host: str | None = None
    client: str | None = None
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        client = f"{host}:{peer[1]}"
    # Repeated names are joined (as the ASGI view joins them): a repeated id is invalid.
    ctx = factory.from_headers(
        join_headers(request.headers.items()),
        method=request.method,
        path=request.path,
        client=client,
        peer_host=host or "",
    )
    resource = request.match_info.route.resource
    if resource is not None:
        ctx.route = resource.canonical
    return ctx


def _add_headers(
    factory: RequestContextFactory,
    request: web.Request,
    response: web.StreamResponse,
    preparing: bool = False,
) -> None:
    # `preparing`: called from on_response_prepare, where the headers are not
    # written yet although `prepared` may already be true.
    ctx = request.get(_CTX_KEY)
    if ctx is None or request.get(_DONE_KEY) or (response.prepared and not preparing):
        return
    request[_DONE_KEY] = True
    for name, value in factory.response_headers(ctx):
        response.headers[name] = value


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text)


@checked_options
def make_middleware(
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
) -> Middleware:
    """A middleware with its own options (those of `RequestContextFactory`).

    `access_log`: one access line per request when its response is done (True:
    the ``asynclocal.access`` logger; or a logger name, a Logger, an `AccessLog`).

    Raises:
        UnknownOptionError: an unknown keyword (a typo); the message lists the valid ones.
        ConfigurationError / TypeError: an option is unusable.
    """
    return _build(
        build_factory(
            factory,
            "make_middleware()",
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
        AccessLog.resolve(access_log),
    )


def _build(factory: RequestContextFactory, access: AccessLog | None = None) -> Middleware:
    @web.middleware
    async def request_context_middleware(
        request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        try:
            ctx = _context(factory, request)
        except InvalidRequestId as exc:
            rejected = _plain(exc.status_code, exc.public_message)
            rejected.headers[factory.header] = factory.policy.new_id()
            return rejected
        request[_CTX_KEY] = ctx
        response: web.StreamResponse
        meter = None if access is None else access.start(request.method, request.path_qs)
        with request_storage.scope(ctx):
            try:
                pending = factory.start(ctx)
                if pending is not None:
                    await pending
                response = await handler(request)
            except web.HTTPException as exc:
                _add_headers(factory, request, exc)
                if meter is not None:
                    meter.set_status(exc.status)
                    meter.bytes = len(exc.body) if isinstance(exc.body, bytes) else 0
                    meter.finish(ctx)
                raise
            except RequestRejected as exc:
                response = _plain(exc.status_code, exc.public_message)
                for name, value in exc.headers:
                    response.headers.add(name, value)
            except Exception:
                logger.exception(
                    "unhandled exception in aiohttp handler %s %r", ctx.method, ctx.path
                )
                response = _plain(500, "Internal Server Error")
            _add_headers(factory, request, response)
            if meter is not None:
                meter.set_status(response.status)
                length = response.body_length if response.prepared else response.content_length
                meter.bytes = length or 0
                meter.finish(ctx)
            return response

    request_context_middleware.__asynclocal_factory__ = factory  # type: ignore[attr-defined]
    return request_context_middleware


#: A ready middleware with the default options.
request_context_middleware: Middleware = _build(RequestContextFactory())


@checked_options
def setup(
    app: web.Application,
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
) -> Middleware:
    """Install the middleware (first) and the signal that adds headers to streamed responses.

    Options are those of `make_middleware`. Returns the middleware. Call before the app starts.

    Raises:
        UnknownOptionError: an unknown keyword (a typo); the message lists the valid ones.
        TypeError: `app` is not an aiohttp Application, or an option has the wrong type.
        ConfigurationError: an option has an unusable value.
    """
    if not isinstance(app, web.Application):
        raise TypeError(f"setup() needs an aiohttp web.Application, got {type(app).__name__}")
    middleware = _build(
        build_factory(
            factory,
            "setup()",
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
        AccessLog.resolve(access_log),
    )
    used: RequestContextFactory = middleware.__asynclocal_factory__  # type: ignore[attr-defined]

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        _add_headers(used, request, response, preparing=True)

    app.middlewares.insert(0, middleware)  # type: ignore[arg-type]
    app.on_response_prepare.append(on_prepare)
    return middleware
