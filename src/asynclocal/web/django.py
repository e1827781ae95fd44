"""Django middleware for ``MIDDLEWARE``, working in both WSGI and ASGI deployments.

Usage (``settings.py``)::

    MIDDLEWARE = [
        "asynclocal.web.django.RequestContextMiddleware",   # first
        ...
    ]
    # optional; every key is a RequestContextFactory option (others raise
    # UnknownOptionError, a ConfigurationError, naming the valid keys)
    ASYNCLOCAL_REQUEST_CONTEXT = {
        "header": "X-Request-ID",
        "on_request": "myproject.auth.load_user",    # dotted path or callable
        "trusted_proxies": ["10.0.0.0/8"],
        "access_log": True,          # one access line per request (docs/logging.md)
    }

Put it first so every other middleware, view and the 500 handler run inside
the request's context. The response gets the id header (also on Django's own
404/500 responses) and ``ctx.response_headers()``; ``ctx.route`` is set from
``resolver_match.route`` before the view runs; `RequestRejected` answers with
its status and headers; a streamed body keeps the context until its last chunk. Async
``on_request`` hooks need an ASGI deployment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.conf import settings
    from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
    from django.utils.log import log_response
    from django.utils.module_loading import import_string
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "asynclocal.web.django needs the 'django' extra: pip install 'asynclocal[django]'"
    ) from exc

from .._options import unknown_option_error
from ..errors import ConfigurationError
from ..logging import AccessLog, AccessMeter
from ..request._context import RequestContext, RequestRejected, request_storage
from ..request._factory import RequestContextFactory, served_by_outer
from ..request._ids import InvalidRequestId
from ..request._rejected import joined_rejection_headers

__all__ = ["SETTINGS_KEYS", "SETTINGS_NAME", "RequestContextMiddleware"]

#: The Django setting holding the `RequestContextFactory` options.
SETTINGS_NAME = "ASYNCLOCAL_REQUEST_CONTEXT"

GetResponse = Callable[[HttpRequest], Any]


#: The keys `ASYNCLOCAL_REQUEST_CONTEXT` accepts (the `RequestContextFactory` options).
SETTINGS_KEYS = frozenset(
    {
        "on_request",
        "continue_trace",
        "policy",
        "header",
        "generator",
        "validator",
        "trusted_proxies",
        "reject_invalid",
        "reuse_request_id",
        "access_log",
    }
)
_DOTTED = frozenset({"on_request", "generator", "validator"})


def _factory_from_settings() -> tuple[RequestContextFactory, AccessLog | None]:
    """The factory `settings.ASYNCLOCAL_REQUEST_CONTEXT` describes.

    Raises:
        UnknownOptionError: a key is not an option (a typo); the message lists the valid ones.
        ConfigurationError: the setting is not a dict, a dotted path does not import,
            or a value is unusable.
    """
    raw = getattr(settings, SETTINGS_NAME, None)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigurationError(
            f"settings.{SETTINGS_NAME} must be a dict of RequestContextFactory options, "
            f"got {type(raw).__name__}"
        )
    unknown = [key for key in raw if key not in SETTINGS_KEYS]
    if unknown:
        raise unknown_option_error(f"settings.{SETTINGS_NAME}", map(str, unknown), SETTINGS_KEYS)
    options = dict(raw)
    try:
        access = AccessLog.resolve(options.pop("access_log", None), f"settings.{SETTINGS_NAME}")
    except TypeError as exc:
        raise ConfigurationError(str(exc)) from exc
    for key in _DOTTED:
        value = options.get(key)
        if isinstance(value, str):
            try:
                options[key] = import_string(value)
            except ImportError as exc:
                raise ConfigurationError(
                    f"settings.{SETTINGS_NAME}[{key!r}] = {value!r:.100} does not import: {exc}"
                ) from exc
    try:
        return RequestContextFactory(**options), access
    except ConfigurationError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"settings.{SETTINGS_NAME} is invalid: {exc}") from exc


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


def _rejected(exc: RequestRejected) -> HttpResponse:
    # Django keeps one value per header name: repeated names are joined with ", ".
    return HttpResponse(
        exc.public_message,
        status=exc.status_code,
        content_type="text/plain; charset=utf-8",
        headers=joined_rejection_headers(exc) if exc.headers else None,
    )


def _log_4xx(request: HttpRequest, response: HttpResponseBase) -> None:
    # Django logs a returned 4xx/5xx ("Not Found: /x") after the middleware chain,
    # outside the request's context; logged here, inside it (Django then skips it).
    if response.status_code >= 400:
        log_response(
            "%s: %s", response.reason_phrase, request.path, response=response, request=request
        )


def _sync_chunks(
    ctx: RequestContext, chunks: Iterator[bytes], meter: AccessMeter | None = None
) -> Iterator[bytes]:
    with request_storage.scope(ctx):
        try:
            for chunk in chunks:
                if meter is not None:
                    meter.bytes += len(chunk)
                yield chunk
        finally:
            if meter is not None:
                meter.finish(ctx)


async def _async_chunks(
    ctx: RequestContext, chunks: AsyncIterator[bytes], meter: AccessMeter | None = None
) -> AsyncIterator[bytes]:
    with request_storage.scope(ctx):
        try:
            async for chunk in chunks:
                if meter is not None:
                    meter.bytes += len(chunk)
                yield chunk
        finally:
            if meter is not None:
                meter.finish(ctx)


def _served(request: HttpRequest) -> bool:
    # Behind asynclocal's WSGI or ASGI middleware: join its context, add nothing.
    scope = getattr(request, "scope", None)
    return served_by_outer(request.META) or (isinstance(scope, dict) and served_by_outer(scope))


class RequestContextMiddleware:
    """Give every Django request its `RequestContext` (sync and async capable).

    Behind `asynclocal.web.wsgi`/`asgi.RequestContextMiddleware` it joins that
    middleware's context and leaves the id header to it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        if not callable(get_response):
            raise TypeError("RequestContextMiddleware(get_response) needs a callable")
        self.get_response = get_response
        self.factory, self._access = _factory_from_settings()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        if _served(request):
            return self.get_response(request)
        try:
            ctx = self._context(request)
        except InvalidRequestId as exc:
            return self._invalid(exc)
        meter = self._meter(request)
        with request_storage.scope(ctx):
            try:
                self.factory.start_sync(ctx)
                response = self.get_response(request)
            except RequestRejected as exc:
                response = _rejected(exc)
            _log_4xx(request, response)
        return self._finish(ctx, response, meter)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        if _served(request):
            served: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
            return await served(request)
        try:
            ctx = self._context(request)
        except InvalidRequestId as exc:
            return self._invalid(exc)
        meter = self._meter(request)
        with request_storage.scope(ctx):
            try:
                pending = self.factory.start(ctx)
                if pending is not None:
                    await pending
                get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]
                get_response = self.get_response
                response = await get_response(request)
            except RequestRejected as exc:
                response = _rejected(exc)
            _log_4xx(request, response)
        return self._finish(ctx, response, meter)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        ctx = request_storage.get_store()
        match = request.resolver_match
        if ctx is not None and match is not None and match.route:
            ctx.route = match.route

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestRejected):
            return _rejected(exception)
        return None

    # -- helpers ------------------------------------------------------------

    def _context(self, request: HttpRequest) -> RequestContext:
        ctx = self.factory.from_environ(request.META)
        ctx.path = request.path
        return ctx

    def _invalid(self, exc: InvalidRequestId) -> HttpResponse:
        response = _plain(exc.status_code, exc.public_message)
        response[self.factory.header] = self.factory.policy.new_id()
        return response

    def _meter(self, request: HttpRequest) -> AccessMeter | None:
        if self._access is None:
            return None
        return self._access.start(request.method or "", request.get_full_path())

    def _finish(
        self, ctx: RequestContext, response: HttpResponseBase, meter: AccessMeter | None = None
    ) -> HttpResponseBase:
        for name, value in self.factory.response_headers(ctx):
            response[name] = value
        if meter is not None:
            meter.set_status(response.status_code)
        if isinstance(response, StreamingHttpResponse):
            if response.is_async:
                response.streaming_content = _async_chunks(ctx, response.streaming_content, meter)
            else:
                response.streaming_content = _sync_chunks(ctx, response.streaming_content, meter)
        elif meter is not None:
            meter.bytes = len(getattr(response, "content", b""))
            meter.finish(ctx)
        return response
