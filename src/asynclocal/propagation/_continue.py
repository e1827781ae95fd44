"""`continue_request` / `continue_context` / `install`: a hop continues its caller.

The request factory (`asynclocal.request.RequestContextFactory`) owns every
decision about an incoming request: its `RequestIdPolicy` picks the id and the
causation chain, and trust applies to all of it. This module supplies the
trace half the factory asks for (``traceparent``, ``tracestate`` and
allow-listed ``baggage``), plus the same continuation for code that holds a
`PropagatedContext` from `extract` (task carriers, custom transports).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..request import RequestContext, RequestIdPolicy
from ..request._context import REQUEST_CONTEXT_ARGS
from ..request._factory import continue_trace_default, set_continue_trace_default
from ..request._trace_ids import new_span_id
from . import _carrier
from ._carrier import PropagatedContext, _active_span, new_request_id
from ._config import PropagationConfig, get_config
from ._w3c import parse_baggage, parse_traceparent, parse_tracestate

__all__ = ["CONTINUER", "continue_context", "continue_request", "install", "installed", "uninstall"]


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


def _apply_trace(
    ctx: RequestContext,
    trace_id: str | None,
    parent_span_id: str | None,
    flags: int,
    tracestate: str | None,
    lazy: bool = False,
) -> None:
    span = _active_span() if _carrier._trace_source is not None else None
    if span is not None:
        # A tracer already continued the caller (or started a trace): follow its span.
        ctx.trace_id, ctx.span_id = span.trace_id, span.span_id
        ctx.trace_flags = span.trace_flags
        ctx.tracestate = span.tracestate
        ctx.parent_span_id = parent_span_id
    elif trace_id is not None:
        ctx.trace_id = trace_id
        ctx.span_id = new_span_id()
        ctx.trace_flags = flags
        ctx.tracestate = tracestate
        ctx.parent_span_id = parent_span_id
    elif lazy:
        ctx.start_trace_lazily()  # most requests never read it: made on demand
    else:
        ctx.ensure_trace()


class _Continuer:
    """The trace half of a request's start, called by the request factory."""

    __slots__ = ()

    def start(self, ctx: RequestContext) -> None:
        """No trace came in: `ctx` starts its own (on demand) or follows a tracer's span."""
        if _carrier._trace_source is None:
            ctx.start_trace_lazily()
        else:
            _apply_trace(ctx, None, None, 0, None, lazy=True)

    def follow(
        self,
        ctx: RequestContext,
        traceparent: str | None,
        tracestate: str | None,
        baggage: str | None,
    ) -> None:
        """Continue the incoming trace; apply allow-listed baggage (None: not trusted).

        Never raises: malformed values are ignored and the request starts its own trace.
        """
        try:
            cfg = get_config()
            trace_id = span_id = state = None
            flags = 0
            if traceparent is not None and cfg.trace_context:
                parsed = parse_traceparent(traceparent)
                if parsed is not None:
                    trace_id, span_id, flags = parsed
                    state = parse_tracestate(tracestate)
            _apply_trace(ctx, trace_id, span_id, flags, state, lazy=True)
            if baggage is not None and cfg.baggage_fields:
                _apply_baggage(ctx, parse_baggage(baggage), cfg)
        except Exception:  # never fail a request over propagation
            ctx.start_trace_lazily()


#: What `RequestContextFactory` calls to continue an incoming trace.
CONTINUER = _Continuer()


def _reuse(policy: RequestIdPolicy | None, cfg: PropagationConfig) -> bool:
    return policy.reuse_request_id if policy is not None else cfg.reuse_request_id


def _fresh_id(policy: RequestIdPolicy | None, cfg: PropagationConfig) -> str:
    return policy.new_id() if policy is not None else new_request_id(cfg)


def continue_context(
    ctx: RequestContext,
    propagated: PropagatedContext,
    *,
    policy: RequestIdPolicy | None = None,
) -> RequestContext:
    """Make an already-built `ctx` continue the caller in `propagated` (trusted input).

    For code with its own ingress; the middlewares do this themselves, deciding
    trust first. Sets the causation chain (root id = the caller's root, parent
    id = the caller's id), the trace (same trace id, a new span id; a fresh
    trace when none came in) and allow-listed baggage fields. When `ctx`
    carries the caller's id as its own, it gets a fresh id from `policy` (or
    the default generator) instead, unless the policy says
    ``reuse_request_id=True``.
    """
    cfg = get_config()
    caller = propagated.parent_request_id
    if caller is not None:
        if _reuse(policy, cfg):
            ctx.request_id = caller
        elif ctx.request_id == caller:
            ctx.request_id = _fresh_id(policy, cfg)
        ctx.root_request_id = propagated.root_request_id or caller
        ctx.parent_request_id = caller if caller != ctx.request_id else None
    elif _reuse(policy, cfg) and propagated.request_id is not None:
        ctx.request_id = propagated.request_id
        ctx.root_request_id = propagated.request_id
    _apply_trace(
        ctx,
        propagated.trace_id,
        propagated.parent_span_id,
        propagated.trace_flags,
        propagated.tracestate,
    )
    _apply_baggage(ctx, propagated.baggage, cfg)
    return ctx


# continue_request() sets the trace and causation ids itself.
_REQUEST_KWARGS = REQUEST_CONTEXT_ARGS - {
    "trace_id",
    "span_id",
    "root_request_id",
    "parent_request_id",
}


def continue_request(
    propagated: PropagatedContext, *, policy: RequestIdPolicy | None = None, **fields: Any
) -> RequestContext:
    """A new `RequestContext` for this hop, continuing the caller in `propagated`.

    Request id: `request_id=` when given, else the propagated one when `policy`
    says ``reuse_request_id=True``, else fresh from `policy`'s generator (the
    default generator without a policy); root id: the propagated root; parent
    id: the caller's id; same trace id with a new span id (a fresh trace when
    none came in); allow-listed baggage fields set on the context. `fields` are
    `RequestContext` keyword arguments (method, path, route, client, headers,
    user, access_token, refresh_token, started_at, fields). Request
    initializers are not run (a middleware or `with_request_context` does that).

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
    elif _reuse(policy, cfg) and propagated.request_id is not None:
        rid = propagated.request_id
    else:
        rid = _fresh_id(policy, cfg)
    caller = propagated.parent_request_id
    root = propagated.root_request_id or caller or rid
    ctx = RequestContext(
        rid,
        root_request_id=root,
        parent_request_id=caller if caller != rid else None,
        **fields,
    )
    _apply_trace(
        ctx,
        propagated.trace_id,
        propagated.parent_span_id,
        propagated.trace_flags,
        propagated.tracestate,
    )
    _apply_baggage(ctx, propagated.baggage, cfg)
    return ctx


def install() -> None:
    """Make trace continuation the process-wide default (it is the default already).

    Middlewares and factories built with ``continue_trace=True`` or ``False``
    ignore it; those that leave ``continue_trace`` unset (None) follow it.
    Idempotent.
    """
    set_continue_trace_default(True)


def uninstall() -> None:
    """Turn the process-wide continuation default off (requests start their own trace).

    Only factories that leave ``continue_trace`` unset follow it. Idempotent.
    """
    set_continue_trace_default(False)


def installed() -> bool:
    """Whether the process-wide continuation default is on."""
    return continue_trace_default()
