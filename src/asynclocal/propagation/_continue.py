"""`continue_request` / `continue_context` / `install`: a hop continues its caller."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..request import (
    RequestContext,
    add_request_initializer,
    remove_request_initializer,
)
from ..request._context import REQUEST_CONTEXT_ARGS
from ..request._scope import _LazyHeaders
from ..request._trace_ids import new_span_id, new_trace_and_span_ids
from . import _carrier
from ._carrier import (
    PropagatedContext,
    _active_span,
    extract_with,
    new_request_id,
)
from ._config import PropagationConfig, get_config

_NOTHING = PropagatedContext()

__all__ = ["continue_context", "continue_request", "install", "installed", "uninstall"]


def _apply_baggage(ctx: RequestContext, baggage: Mapping[str, str], cfg: PropagationConfig) -> None:
    for name in cfg.baggage_fields:
        value = baggage.get(name)
        if value is None:
            continue
        if name in ("access_token", "refresh_token"):
            if getattr(ctx, name) is None:
                setattr(ctx, name, value)
        elif name == "user_id":
            if ctx.user is None:
                ctx.user = value
        elif name != "cookies":
            ctx.set_if_absent(name, value)


def _apply_trace(ctx: RequestContext, propagated: PropagatedContext) -> None:
    span = _active_span()
    if span is not None:
        # A tracer already continued the caller (or started a trace): follow its span.
        ctx.trace_id, ctx.span_id = span.trace_id, span.span_id
        ctx.trace_flags = span.trace_flags
        ctx.tracestate = span.tracestate
        ctx.parent_span_id = propagated.parent_span_id
    elif propagated.trace_id is not None:
        ctx.trace_id = propagated.trace_id
        ctx.span_id = new_span_id()
        ctx.trace_flags = propagated.trace_flags
        ctx.tracestate = propagated.tracestate
        ctx.parent_span_id = propagated.parent_span_id
    elif ctx.trace_id is None:
        ctx.trace_id, ctx.span_id = new_trace_and_span_ids()
    elif ctx.span_id is None:
        ctx.span_id = new_span_id()


def continue_context(ctx: RequestContext, propagated: PropagatedContext) -> RequestContext:
    """Make an already-built `ctx` (a middleware's) continue the caller in `propagated`.

    Sets the causation chain (root id = the caller's root, parent id = the
    caller's id), the trace (same trace id, a new span id; a fresh trace when
    none came in) and allow-listed baggage fields. When the middleware
    adopted the caller's id as this request's id, the request gets a fresh id
    instead, unless `reuse_request_id` is configured. Applies once per
    context: later calls return `ctx` unchanged.
    """
    if ctx._trace_continued:
        return ctx
    ctx._trace_continued = True
    cfg = get_config()
    caller = propagated.parent_request_id
    if caller is not None:
        if cfg.reuse_request_id:
            ctx.request_id = caller
        elif ctx.request_id == caller:
            ctx.request_id = new_request_id(cfg)
        ctx.root_request_id = propagated.root_request_id or caller
        ctx.parent_request_id = caller if caller != ctx.request_id else None
    elif cfg.reuse_request_id and propagated.request_id is not None:
        ctx.request_id = propagated.request_id
        ctx.root_request_id = propagated.request_id
    _apply_trace(ctx, propagated)
    _apply_baggage(ctx, propagated.baggage, cfg)
    return ctx


# continue_request() sets the trace and causation ids itself.
_REQUEST_KWARGS = REQUEST_CONTEXT_ARGS - {
    "trace_id",
    "span_id",
    "root_request_id",
    "parent_request_id",
}


def continue_request(propagated: PropagatedContext, **fields: Any) -> RequestContext:
    """A new `RequestContext` for this hop, continuing the caller in `propagated`.

    Request id: fresh (or the propagated one when `reuse_request_id` is
    configured, or `request_id=` when given); root id: the propagated root;
    parent id: the caller's id; same trace id with a new span id (a fresh
    trace when none came in); allow-listed baggage fields set on the context.
    `fields` are `RequestContext` keyword arguments (method, path, route,
    client, headers, user, access_token, refresh_token, started_at, fields).
    Request initializers are not run (a middleware or `with_request_context`
    does that).

    Raises:
        TypeError: `propagated` is not a PropagatedContext, or an unknown field is given.
    """
    if not isinstance(propagated, PropagatedContext):
        raise TypeError(
            "continue_request() expects the PropagatedContext returned by extract(), got "
            f"{type(propagated).__name__}"
        )
    unknown = sorted(set(fields) - _REQUEST_KWARGS)
    if unknown:
        raise TypeError(
            f"continue_request() got unknown fields {unknown}; pass RequestContext arguments "
            f"({', '.join(sorted(_REQUEST_KWARGS))}) and app fields as fields={{...}}"
        )
    cfg = get_config()
    explicit = fields.pop("request_id", None)
    if explicit is not None:
        rid = explicit
    elif cfg.reuse_request_id and propagated.request_id is not None:
        rid = propagated.request_id
    else:
        rid = new_request_id(cfg)
    caller = propagated.parent_request_id
    root = propagated.root_request_id or caller or rid
    ctx = RequestContext(
        rid,
        root_request_id=root,
        parent_request_id=caller if caller != rid else None,
        **fields,
    )
    ctx._trace_continued = True
    _apply_trace(ctx, propagated)
    _apply_baggage(ctx, propagated.baggage, cfg)
    return ctx


_names_for: tuple[PropagationConfig, frozenset[str]] | None = None


def _continuation_headers(cfg: PropagationConfig) -> frozenset[str]:
    """The incoming headers that can change what `continue_context` does under `cfg`."""
    global _names_for
    cached = _names_for
    if cached is not None and cached[0] is cfg:
        return cached[1]
    names = {cfg.root_request_id_header}
    if cfg.trace_context:
        names.add("traceparent")
    if cfg.baggage_fields:
        names.add("baggage")
    if cfg.reuse_request_id:
        names.add(cfg.request_id_header)
    result = frozenset(n for n in names if n)
    _names_for = (cfg, result)
    return result


def _initializer(ctx: RequestContext) -> None:
    try:
        headers = ctx.headers
        cfg = get_config()
        cached = _names_for  # _continuation_headers(cfg), its cache hit inlined
        names = cached[1] if cached is not None and cached[0] is cfg else _continuation_headers(cfg)
        present = (
            headers.contains_any(names)
            if type(headers) is _LazyHeaders  # what the middlewares build
            else any(n in headers for n in names)
        )
        if not present:
            # Nothing to continue (the common case): this request starts its own
            # trace, made when first read, or follows an active tracer's span.
            ctx._trace_continued = True
            if _carrier._trace_source is None or _active_span() is None:
                if ctx._trace_id is None or ctx._span_id is None:
                    ctx._trace_lazy = True  # ctx.start_trace_lazily(), inlined
            else:
                _apply_trace(ctx, _NOTHING)
            return
        # RequestContext.headers has lower-cased names: no case-insensitive scan needed.
        continue_context(ctx, extract_with(headers.get))
    except Exception:  # never fail a request over propagation
        if ctx.trace_id is None:
            ctx.trace_id, ctx.span_id = new_trace_and_span_ids()


def install() -> None:
    """Make every middleware continue the caller's trace and causation chain.

    Registers a request initializer that runs `extract` on the incoming
    headers and `continue_context` on the new request: it gets the caller's
    trace id (or a fresh trace), root id and parent id. Idempotent.
    """
    add_request_initializer(_initializer)


def uninstall() -> None:
    """Undo `install()`. Idempotent."""
    remove_request_initializer(_initializer)


def installed() -> bool:
    """Whether `install()` is in effect."""
    from ..request import _context

    return _initializer in _context._initializers
