"""AWS Lambda: a fresh request context for every invocation (standard library only).

::

    from asynclocal.integrations.aws_lambda import lambda_handler

    @lambda_handler
    def handler(event, context):          # or: async def handler(event, context)
        log.info("paying")                # request_id = context.aws_request_id
        return {"statusCode": 200, "body": "ok"}

Per invocation: request id = ``context.aws_request_id``; method, path,
headers and client from an API Gateway (REST/HTTP), ALB or function URL
event; the caller's causation chain and ``traceparent`` from the event's
headers when present, else the trace of the ``_X_AMZN_TRACE_ID`` environment
value (read at the start of each invocation), else a fresh trace. Request
initializers (propagation, OpenTelemetry) run as in the web middleware. The
handler runs in a copy of the current `contextvars` context, so nothing it
sets leaks into the next invocation on the same thread.

Concurrency: invocations may run concurrently on threads (local emulators,
custom runtimes, tests); each sees only its own context. The Python runtime
of Lambda Managed Instances runs concurrent invocations in separate
processes, where ``_X_AMZN_TRACE_ID`` is per process and so exact. With
several invocations on threads of one process the environment value is
shared and may belong to another invocation: pass the trace in the event's
headers (``traceparent``) there, which always wins.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import os
import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, overload

from ..propagation import PropagatedContext
from ..propagation._w3c import format_traceparent, new_span_id
from ..request import (
    RequestContext,
    RequestContextFactory,
    RequestRejected,
    is_valid_request_id,
    request_storage,
)
from ..request._factory import join_headers
from ..request._rejected import joined_rejection_headers

__all__ = ["XRAY_ENV", "lambda_handler", "parse_xray_trace_header", "request_context_for"]

#: The environment variable the Lambda runtime sets to the invocation's X-Ray trace header.
XRAY_ENV = "_X_AMZN_TRACE_ID"

R = TypeVar("R")
Handler = Callable[[Any, Any], R]

_XRAY_ROOT = re.compile(r"1-([0-9a-f]{8})-([0-9a-f]{24})")
_HEX16 = re.compile(r"[0-9a-f]{16}")


def parse_xray_trace_header(value: object) -> PropagatedContext | None:
    """Read an X-Ray trace header (``Root=1-…;Parent=…;Sampled=1``) as W3C trace ids.

    The X-Ray root ``1-{8 hex}-{24 hex}`` maps to the 32-hex W3C trace id (the
    mapping OpenTelemetry's X-Ray propagator uses). None when malformed.
    """
    if not isinstance(value, str) or len(value) > 1024:
        return None
    parts: dict[str, str] = {}
    for item in value.split(";"):
        key, sep, val = item.strip().partition("=")
        if sep:
            parts[key.strip().lower()] = val.strip()
    root = _XRAY_ROOT.fullmatch(parts.get("root", "").lower())
    if root is None:
        return None
    trace_id = root.group(1) + root.group(2)
    if trace_id == "0" * 32:
        return None
    parent = parts.get("parent", "").lower()
    return PropagatedContext(
        trace_id=trace_id,
        parent_span_id=parent if _HEX16.fullmatch(parent) and parent != "0" * 16 else None,
        trace_flags=1 if parts.get("sampled") == "1" else 0,
    )


def _event_headers(event: object) -> dict[str, str]:
    if not isinstance(event, Mapping):
        return {}
    raw = event.get("headers")
    headers = (
        {str(k).lower(): v for k, v in raw.items() if isinstance(v, str)}
        if isinstance(raw, Mapping)
        else {}
    )
    multi = event.get("multiValueHeaders")
    if isinstance(multi, Mapping):
        # REST APIs and ALBs with multi-value headers on: every value of each name
        # (`headers` keeps only the last one). Joined as the ASGI view joins them.
        headers.update(
            join_headers(
                (str(name), value)
                for name, values in multi.items()
                if isinstance(values, list)
                for value in values
                if isinstance(value, str)
            )
        )
    cookies = event.get("cookies")
    if "cookie" not in headers and isinstance(cookies, list):
        # Payload format 2.0 (HTTP API, function URLs) moves the Cookie header here.
        headers["cookie"] = "; ".join(c for c in cookies if isinstance(c, str))
    return headers


def _dig(event: Mapping[str, Any], *keys: str) -> Any:
    value: Any = event
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _is_http_event(event: object) -> bool:
    return isinstance(event, Mapping) and (
        "httpMethod" in event or _dig(event, "requestContext", "http", "method") is not None
    )


_DEFAULT_FACTORY = RequestContextFactory()


def request_context_for(
    event: object, context: object, *, factory: RequestContextFactory | None = None
) -> RequestContext:
    """Build the `RequestContext` of one invocation (without running initializers).

    Built by `factory` (default: a `RequestContextFactory()` with the default
    policy), as the web middlewares build theirs: the event's headers are the
    request's, the event's source IP its peer (trust applies), and
    ``context.aws_request_id`` is the fresh id wherever the policy wants one.
    Without a ``traceparent`` in the headers, the ``_X_AMZN_TRACE_ID`` trace is
    continued. Never raises on odd events or contexts: a missing or invalid
    ``aws_request_id`` yields a generated id, a non-HTTP event an empty method/path.

    Raises:
        InvalidRequestId: the incoming id is invalid and the policy rejects it.
    """
    factory = _DEFAULT_FACTORY if factory is None else factory
    aws_id = getattr(context, "aws_request_id", None)
    fresh = aws_id if isinstance(aws_id, str) and is_valid_request_id(aws_id) else None
    headers = _event_headers(event)
    method = path = ""
    client = None
    if isinstance(event, Mapping):
        method = str(
            event.get("httpMethod") or _dig(event, "requestContext", "http", "method") or ""
        )
        path = str(event.get("path") or event.get("rawPath") or "")
        source = _dig(event, "requestContext", "identity", "sourceIp") or _dig(
            event, "requestContext", "http", "sourceIp"
        )
        client = source if isinstance(source, str) else None
    if "traceparent" not in headers and factory.continues():
        xray = parse_xray_trace_header(os.environ.get(XRAY_ENV))
        if xray is not None and xray.trace_id is not None:
            headers = {
                **headers,
                "traceparent": format_traceparent(
                    xray.trace_id,
                    xray.parent_span_id or new_span_id(),
                    xray.trace_flags,
                ),
            }
    return factory.from_headers(
        headers, method=method, path=path, client=client, peer_host=client or "", own_id=fresh
    )


def _finish(event: object, ctx: RequestContext, result: Any, factory: RequestContextFactory) -> Any:
    """Add the request id and response headers to an HTTP-proxy style result.

    The context's ``on_response`` callbacks run once per invocation, HTTP or not
    (they end the OpenTelemetry span, for one).
    """
    added = factory.response_headers(ctx)
    if not (_is_http_event(event) and isinstance(result, dict) and "statusCode" in result):
        return result
    headers = result.get("headers")
    if headers is None:
        headers = result["headers"] = {}
    if isinstance(headers, dict):
        present = {str(k).lower() for k in headers}
        for name, value in added:
            if name.lower() not in present:
                headers[name] = value
                present.add(name.lower())
    return result


def _rejected(
    event: object, ctx: RequestContext, exc: RequestRejected, factory: RequestContextFactory
) -> Any:
    if not _is_http_event(event):
        raise exc
    # The id header stays ours; a repeated name is joined with ", " (one value per key).
    own = factory.header.lower()
    headers = {
        name: value for name, value in joined_rejection_headers(exc).items() if name.lower() != own
    }
    return _finish(
        event,
        ctx,
        {"statusCode": exc.status_code, "body": exc.public_message, "headers": headers},
        factory,
    )


def _invoke_sync(fn: Handler[R], factory: RequestContextFactory, event: Any, context: Any) -> Any:
    ctx = request_context_for(event, context, factory=factory)
    with request_storage.scope(ctx):
        try:
            factory.start_sync(ctx)
            return _finish(event, ctx, fn(event, context), factory)
        except RequestRejected as exc:
            return _rejected(event, ctx, exc, factory)


async def _invoke_async(
    fn: Handler[Awaitable[R]], factory: RequestContextFactory, event: Any, context: Any
) -> Any:
    ctx = request_context_for(event, context, factory=factory)
    with request_storage.scope(ctx):
        try:
            pending = factory.start(ctx)
            if pending is not None:
                await pending
            return _finish(event, ctx, await fn(event, context), factory)
        except RequestRejected as exc:
            return _rejected(event, ctx, exc, factory)


class _LoopHolder:
    """One event loop per thread, kept across invocations, closed when the thread ends."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        try:
            if not self.loop.is_running():
                self.loop.close()
        except Exception:
            pass


_loops = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    holder: _LoopHolder | None = getattr(_loops, "holder", None)
    if holder is None or holder.loop.is_closed():
        holder = _loops.holder = _LoopHolder()
    return holder.loop


@overload
def lambda_handler(
    fn: Handler[R], /, *, factory: RequestContextFactory | None = None
) -> Handler[Any]: ...
@overload
def lambda_handler(
    fn: None = None, /, *, factory: RequestContextFactory | None = None
) -> Callable[[Handler[R]], Handler[Any]]: ...


def lambda_handler(
    fn: Handler[R] | None = None, /, *, factory: RequestContextFactory | None = None
) -> Handler[Any] | Callable[[Handler[R]], Handler[Any]]:
    """Decorate a Lambda handler ``handler(event, context)`` (sync or ``async``).

    Each invocation runs with its own `RequestContext` (see the module docs)
    in a copy of the caller's `contextvars` context. An HTTP-proxy result
    (a dict with ``statusCode`` for an API Gateway/ALB/function URL event)
    gets the ``X-Request-ID`` and the context's response headers unless it
    sets them; a `RequestRejected` raised for such an event becomes its
    status response with its ``headers``. An ``async`` handler is wrapped into a plain function
    (what the Lambda runtime calls) that runs it on an event loop kept per
    thread across invocations; `wrapper.invoke_async(event, context)` is the
    awaitable form for code that already runs a loop.

    `factory` (a `RequestContextFactory`: id policy, trust, ``on_request``,
    ``continue_trace``) builds each invocation's context, as in the web
    middlewares; ``@lambda_handler(factory=...)`` passes one.

    Raises:
        TypeError: `fn` is not callable, or `factory` is not a RequestContextFactory.
    """
    if factory is not None and not isinstance(factory, RequestContextFactory):
        raise TypeError(f"factory must be a RequestContextFactory, got {type(factory).__name__}")
    used = _DEFAULT_FACTORY if factory is None else factory
    if fn is None:
        return functools.partial(lambda_handler, factory=factory)
    if not callable(fn):
        raise TypeError(
            f"lambda_handler expects a handler(event, context) function, got {type(fn).__name__}"
        )
    if inspect.iscoroutinefunction(fn):
        async_fn: Handler[Awaitable[Any]] = fn

        @functools.wraps(fn)
        def run_async(event: Any, context: Any) -> Any:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                raise RuntimeError(
                    "this async Lambda handler was called from a running event loop; "
                    "await handler.invoke_async(event, context) instead"
                )
            invocation = _invoke_async(async_fn, used, event, context)
            runner = contextvars.copy_context()
            return runner.run(_thread_loop().run_until_complete, invocation)

        async def invoke_async(event: Any, context: Any) -> Any:
            task = asyncio.ensure_future(_invoke_async(async_fn, used, event, context))
            return await task

        run_async.invoke_async = invoke_async  # type: ignore[attr-defined]
        return run_async

    sync_fn = fn

    @functools.wraps(fn)
    def run_sync(event: Any, context: Any) -> Any:
        return contextvars.copy_context().run(_invoke_sync, sync_fn, used, event, context)

    return run_sync
