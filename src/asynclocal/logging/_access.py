"""The per-request access line: one structured record when a request completes.

The web integrations take ``access_log=`` (True, a logger name, a
``logging.Logger`` or an `AccessLog`) and call `AccessLog.emit` once per
request, in the request's context, after the response went out. The record
goes through the app's normal logging pipeline, so it carries the request's
ids (``request_id``, ``trace_id``, ``user_id``, the causation chain) like any
other line, and its message and fields are masked and escaped by the formatters
like any other (a query string holding ``token=...`` is masked).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from asynclocal.request import RequestContext, request_storage

_Message = MutableMapping[str, Any]

__all__ = [
    "ACCESS_FIELDS",
    "DEFAULT_ACCESS_LOGGER",
    "AccessLog",
    "AccessMeter",
    "resolve_access_log",
]

#: The logger the access line goes to when ``access_log=True``.
DEFAULT_ACCESS_LOGGER = "asynclocal.access"

#: The extra attributes of an access record, besides the request fields.
ACCESS_FIELDS: tuple[str, ...] = (
    "http_method",
    "http_route",
    "http_path",
    "http_status",
    "duration_ms",
    "response_bytes",
)


class AccessLog:
    """Writes one access record per completed request.

    The message reads ``GET /items/7 200 512B 3.1ms``; the record's extra
    attributes are `ACCESS_FIELDS` (``http_method``, ``http_route`` — the
    matched route template, or None —, ``http_path``, ``http_status``,
    ``duration_ms``, ``response_bytes``), which `JsonFormatter` writes as
    keys. A 5xx status is logged at ERROR, 4xx at WARNING, else at `level`.

    Args:
        logger: a logger or logger name. Default ``"asynclocal.access"``.
        level: the level of successful requests. Default INFO.

    Raises:
        TypeError: `logger` is neither a str nor a ``logging.Logger``; `level` not an int.
    """

    __slots__ = ("level", "logger")

    @staticmethod
    def resolve(
        value: bool | str | logging.Logger | AccessLog | None, owner: str = "access_log"
    ) -> AccessLog | None:
        """The ``access_log=`` option of a web integration: None/False -> off,
        True -> the ``asynclocal.access`` logger, a name or Logger -> that logger.

        Raises:
            TypeError: any other value.
        """
        return resolve_access_log(value, owner)

    def start(self, method: str, path: str) -> AccessMeter:
        """A meter for one request starting now (the web integrations call it)."""
        return AccessMeter(self, method, path)

    def __init__(
        self, logger: logging.Logger | str = DEFAULT_ACCESS_LOGGER, *, level: int = logging.INFO
    ) -> None:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        if not isinstance(logger, logging.Logger):
            raise TypeError(f"AccessLog(logger) must be a Logger or a name, got {logger!r:.60}")
        if not isinstance(level, int) or isinstance(level, bool):
            raise TypeError(f"AccessLog(level) must be a logging level int, got {level!r:.60}")
        self.logger = logger
        self.level = level

    def emit(
        self,
        ctx: RequestContext | None,
        *,
        method: str,
        path: str,
        status: int,
        response_bytes: int,
        duration: float,
        route: str | None = None,
    ) -> None:
        """Log the access record of the request `ctx` (made current for the call if it is not).

        `duration` is in seconds. Never raises: a logging failure is the
        handler's to report (``logging.raiseExceptions``).
        """
        level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else self.level
        if not self.logger.isEnabledFor(level):
            return
        if ctx is not None and route is None:
            route = ctx.route or None
        extra = {
            "http_method": method,
            "http_route": route,
            "http_path": path,
            "http_status": status,
            "duration_ms": round(duration * 1000.0, 3),
            "response_bytes": response_bytes,
        }
        args = (method, path, status, response_bytes, duration * 1000.0)
        try:
            if ctx is None or request_storage.get_store() is ctx:
                self.logger.log(level, "%s %s %d %dB %.1fms", *args, extra=extra)
            else:
                with request_storage.scope(ctx):
                    self.logger.log(level, "%s %s %d %dB %.1fms", *args, extra=extra)
        except Exception:  # the response already went out; never fail the request
            return


class AccessMeter:
    """Counts one request's status and body bytes, and writes its access line once."""

    __slots__ = ("_access", "_done", "bytes", "method", "path", "started", "status")

    def __init__(self, access: AccessLog, method: str, path: str) -> None:
        self._access = access
        self.method = method
        self.path = path
        self.status = 0
        self.bytes = 0
        self.started = time.perf_counter()
        self._done = False

    def set_status(self, status: int | str) -> None:
        """The response status: an int, or a WSGI status line (``"404 Not Found"``)."""
        if isinstance(status, str):
            try:
                status = int(status[:3])
            except ValueError:
                status = 0
        self.status = status

    def wrap_asgi_send(self, send: Callable[[_Message], Awaitable[None]]) -> Any:
        """`send`, counting the status and body bytes of the ASGI messages passing."""

        async def metered(message: _Message) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                self.status = int(message.get("status", 0))
            elif kind == "http.response.body":
                self.bytes += len(message.get("body", b""))
            await send(message)

        return metered

    def wsgi_body(
        self, context: contextvars.Context, ctx: RequestContext, body: Iterable[bytes]
    ) -> Iterable[bytes]:
        """`body`, counting its bytes; the line is written when the server closes it."""
        if type(body) is list:
            self.bytes += sum(len(chunk) for chunk in body)
            context.run(self.finish, ctx)
            return body
        return _MeteredBody(self, context, ctx, body)

    def finish(self, ctx: RequestContext | None) -> None:
        """Write the access line (once; later calls do nothing)."""
        if self._done:
            return
        self._done = True
        self._access.emit(
            ctx,
            method=self.method,
            path=self.path,
            status=self.status,
            response_bytes=self.bytes,
            duration=time.perf_counter() - self.started,
        )


class _MeteredBody:
    __slots__ = ("_body", "_context", "_ctx", "_iterator", "_meter")

    def __init__(
        self,
        meter: AccessMeter,
        context: contextvars.Context,
        ctx: RequestContext,
        body: Iterable[bytes],
    ) -> None:
        self._meter = meter
        self._context = context
        self._ctx = ctx
        self._body = body
        self._iterator: Iterator[bytes] = iter(body)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._iterator)
        self._meter.bytes += len(chunk)
        return chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._context.run(self._meter.finish, self._ctx)


def resolve_access_log(
    value: bool | str | logging.Logger | AccessLog | None, owner: str = "access_log"
) -> AccessLog | None:
    """``access_log=`` of a web integration: None/False -> off, True -> the default logger.

    Raises:
        TypeError: any other type.
    """
    if value is None or value is False:
        return None
    if value is True:
        return AccessLog()
    if isinstance(value, AccessLog):
        return value
    if isinstance(value, (str, logging.Logger)):
        return AccessLog(value)
    raise TypeError(
        f"{owner} must be True, False, a logger name, a logging.Logger or an AccessLog, "
        f"got {value!r:.60}"
    )
