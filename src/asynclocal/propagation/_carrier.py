"""`inject` / `extract`: the request's identity in a carrier (headers, message metadata)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from .._header_rules import header_problem
from ..request import RequestContext, generate_request_id, is_valid_request_id, request_storage
from ..request._trace_ids import new_span_id
from ._config import PropagationConfig, get_config
from ._w3c import (
    FLAG_RANDOM,
    FLAG_SAMPLED,
    format_baggage,
    format_traceparent,
    parse_baggage,
    parse_traceparent,
    parse_tracestate,
)

__all__ = [
    "ActiveSpan",
    "CallSpan",
    "OutgoingCall",
    "PropagatedContext",
    "extract",
    "inject",
    "inject_call",
    "new_request_id",
    "set_call_span_starter",
    "set_trace_source",
    "trace_flags",
    "write_fields",
]

#: Where each outgoing call's own span id is recorded (DEBUG records).
log = logging.getLogger("asynclocal.propagation")


class ActiveSpan(NamedTuple):
    """The ids of a tracer's active span, as a trace source reports them."""

    trace_id: str
    span_id: str
    trace_flags: int
    tracestate: str | None


@dataclass(frozen=True)
class PropagatedContext:
    """What an incoming carrier (HTTP headers, message metadata) said about the caller.

    Every field is validated; a field that was absent or malformed is None
    (`baggage` is then empty). `parent_request_id` is the caller's request
    id when the caller is an asynclocal service (it sent the root header);
    `request_id` is the id header's value whatever sent it (a gateway's
    ``X-Request-ID`` included). `parent_span_id` is the caller's span.
    """

    request_id: str | None = None
    root_request_id: str | None = None
    parent_request_id: str | None = None
    trace_id: str | None = None
    parent_span_id: str | None = None
    trace_flags: int = 0
    tracestate: str | None = None
    baggage: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def has_trace(self) -> bool:
        """Whether a valid ``traceparent`` came in."""
        return self.trace_id is not None

    @property
    def is_empty(self) -> bool:
        """Whether nothing usable came in."""
        return self.request_id is None and self.trace_id is None and not self.baggage

    def to_request_context(self, **fields: Any) -> RequestContext:
        """`continue_request(self, **fields)`: lets `with_request_context(extract(h), fn)` work."""
        from ._continue import continue_request

        return continue_request(self, **fields)


_trace_source: Callable[[], ActiveSpan | None] | None = None


def set_trace_source(source: Callable[[], ActiveSpan | None] | None) -> None:
    """Let a tracer report its active span to `inject` (the OpenTelemetry integration does).

    While a source is set and reports a span, `inject` writes that span's
    trace context instead of the request's own ids. Pass None to remove it.
    """
    global _trace_source
    if source is not None and not callable(source):
        raise TypeError("set_trace_source() expects a callable returning ActiveSpan | None")
    _trace_source = source


CallKind = Literal["client", "producer"]


class CallSpan(NamedTuple):
    """A tracer's span for one outgoing call, as a call span starter reports it.

    `span` holds its ids (its span id becomes the call's ``parent-id``);
    `end(status, error)` ends it once the call is over.
    """

    span: ActiveSpan
    end: Callable[[int | None, BaseException | None], None]


#: ``starter(name, kind, attributes)``: start a child span of the active span
#: for one outgoing call, or return None (the OpenTelemetry integration sets it).
CallSpanStarter = Callable[[str, CallKind, Mapping[str, str | int]], CallSpan | None]

_call_span_starter: CallSpanStarter | None = None


def set_call_span_starter(starter: CallSpanStarter | None) -> None:
    """Let a tracer start a span per outgoing call (None removes it)."""
    global _call_span_starter
    if starter is not None and not callable(starter):
        raise TypeError("set_call_span_starter() expects a callable or None")
    _call_span_starter = starter


def _no_end(status: int | None = None, error: BaseException | None = None) -> None:
    return None


class OutgoingCall:
    """One outgoing call: the ids it sent, and the end of its tracer span.

    `span_id` is the call's own span id, sent as the ``parent-id`` of its
    ``traceparent`` (None when no trace context was written); the callee
    records it as its `parent_span_id`. `end()` ends the tracer's span for
    the call, when a tracer started one; it is idempotent and never raises.
    """

    __slots__ = ("_end", "span_id", "trace_id")

    def __init__(
        self,
        span_id: str | None,
        trace_id: str | None,
        end: Callable[[int | None, BaseException | None], None] = _no_end,
    ) -> None:
        self.span_id = span_id
        self.trace_id = trace_id
        self._end: Callable[[int | None, BaseException | None], None] | None = end

    @property
    def pending(self) -> bool:
        """Whether a tracer span waits for `end()`."""
        return self._end is not None and self._end is not _no_end

    def end(self, *, status: int | None = None, error: BaseException | None = None) -> None:
        """End the call's tracer span (with the response status or the error)."""
        end, self._end = self._end, None
        if end is None:
            return
        try:
            end(status, error)
        except Exception:  # a tracer failure must never break the call
            pass

    def __repr__(self) -> str:
        return f"OutgoingCall(span_id={self.span_id!r}, trace_id={self.trace_id!r})"


_NO_CALL = OutgoingCall(None, None)


def _start_call_span(
    parent: ActiveSpan, name: str, kind: CallKind, attributes: Mapping[str, str | int]
) -> tuple[ActiveSpan, Callable[[int | None, BaseException | None], None]]:
    """The ids for one call under a tracer's active span: its own child span when
    a starter made one, else a fresh span id (never the active span's)."""
    starter = _call_span_starter
    if starter is not None:
        try:
            started = starter(name, kind, attributes)
        except Exception:  # a tracer failure must never break the request
            started = None
        if started is not None:
            if started.span.span_id != parent.span_id and started.span.trace_id == parent.trace_id:
                return started.span, started.end
            try:  # a no-op tracer hands back its parent: no span of its own
                started.end(None, None)
            except Exception:
                pass
    return parent._replace(span_id=new_span_id()), _no_end


def _active_span() -> ActiveSpan | None:
    source = _trace_source
    if source is None:
        return None
    try:
        return source()
    except Exception:  # a tracer failure must never break the request
        return None


def trace_flags(ctx: RequestContext) -> int:
    """The W3C trace flags of `ctx`'s trace (01 = sampled, 02 = random trace id).

    A continued trace keeps the caller's flags. A trace started here (its
    `trace_flags` is None) has a random trace id, so it carries the random
    flag, and the sampled flag unless ``configure(sampled=False)``.
    """
    if ctx.trace_flags is not None:
        return ctx.trace_flags
    return (FLAG_SAMPLED if get_config().sampled else 0) | FLAG_RANDOM


def new_request_id(config: PropagationConfig | None = None) -> str:
    """A fresh request id from the configured generator (a UUID4 as 32 hex digits by default)."""
    generator = (config or get_config()).id_generator
    if generator is None:
        return generate_request_id()
    value = generator()
    if not isinstance(value, str) or not value:
        raise TypeError(
            f"the propagation id_generator returned {value!r:.40}; it must return a non-empty str"
        )
    return value


def _valid_id(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if is_valid_request_id(value) else None


def _joined(values: Iterable[object]) -> str | None:
    """Several values of one header as one comma-separated value (RFC 9110 5.3)."""
    texts = [v for v in values if isinstance(v, str)]
    return ",".join(texts) if texts else None


#: Methods returning every value of a header, by carrier type: multidict
#: (aiohttp), httpx.Headers, Starlette/Werkzeug headers, email/wsgiref headers.
_MULTI_VALUE_METHODS = ("getall", "get_list", "getlist", "get_all")


def _header_getter(carrier: Mapping[str, str]) -> Callable[[str], object]:
    """A case-insensitive lookup on any mapping (dict, CIMultiDict, httpx.Headers...).

    A header given several times (a multi-value carrier, a list value, or the
    same name in different casings) is returned as its values joined with
    commas, as a server joins repeated headers: one ``tracestate`` list, and
    a ``traceparent`` that no longer parses (duplicates are invalid).
    """
    multi: Callable[[str], Any] | None = None
    for method in _MULTI_VALUE_METHODS:
        candidate = getattr(carrier, method, None)
        if callable(candidate):
            multi = candidate
            break
    lowered: dict[str, list[object]] | None = None

    def get(name: str) -> object:
        nonlocal lowered
        if multi is not None:
            try:
                values = multi(name)
            except Exception:
                values = None
            if isinstance(values, (list, tuple)) and values:
                return _joined(values)
        if lowered is None:
            lowered = {}
            try:
                for key, value in carrier.items():
                    bucket = lowered.setdefault(str(key).lower(), [])
                    if isinstance(value, (list, tuple)):
                        bucket.extend(value)
                    else:
                        bucket.append(value)
            except Exception:
                lowered = {}
        found = lowered.get(name)
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        return _joined(found)

    return get


_EMPTY = PropagatedContext()


def extract(carrier: Mapping[str, str]) -> PropagatedContext:
    """Read a carrier written by `inject` (or by any W3C-compliant service).

    Header names are matched case-insensitively. Never raises: a malformed
    ``traceparent`` is ignored together with its ``tracestate``; malformed
    baggage members are skipped and oversized baggage is cut at 180 members /
    8192 bytes; request ids that fail `asynclocal.request.is_valid_request_id`
    (1-128 letters, digits, ``-._~:+=/``) are dropped. Not a mapping: empty result.
    """
    if carrier is None or not hasattr(carrier, "get"):
        return _EMPTY
    return extract_with(_header_getter(carrier))


def extract_with(get: Callable[[str], object]) -> PropagatedContext:
    """`extract` over a lookup function taking lower-case header names.

    For carriers whose names are already lower-cased (`RequestContext.headers`),
    `extract_with(ctx.headers.get)` skips the case-insensitive fallback scan.
    """
    cfg = get_config()
    rid = _valid_id(get(cfg.request_id_header)) if cfg.request_id_header else None
    root = _valid_id(get(cfg.root_request_id_header)) if cfg.root_request_id_header else None
    if rid is None:
        root = None
    caller = rid if (root is not None or cfg.root_request_id_header is None) else None
    trace_id: str | None = None
    span_id: str | None = None
    tracestate: str | None = None
    flags = 0
    if cfg.trace_context:
        parsed = parse_traceparent(get("traceparent"))
        if parsed is not None:
            trace_id, span_id, flags = parsed
            tracestate = parse_tracestate(get("tracestate"))
    baggage = parse_baggage(get("baggage"))
    if rid is None and trace_id is None and not baggage:
        return _EMPTY
    return PropagatedContext(
        request_id=rid,
        root_request_id=root,
        parent_request_id=caller,
        trace_id=trace_id,
        parent_span_id=span_id,
        trace_flags=flags,
        tracestate=tracestate,
        baggage=MappingProxyType(baggage),
    )


def _field_value(ctx: RequestContext, name: str) -> str | None:
    if name in ("access_token", "refresh_token"):
        value: Any = getattr(ctx, name)
    elif name == "cookies":
        value = ctx.headers.get("cookie")
    elif name == "user_id":
        value = ctx.user_id
    else:
        value = ctx.get(name)
    if value is None or not isinstance(value, (str, int, float, bool)):
        return None
    return str(value)


def inject(
    carrier: MutableMapping[str, str], *, request: RequestContext | None = None
) -> str | None:
    """Write the current (or given) request's propagated fields into `carrier`.

    Writes the request id and root id headers, ``traceparent``/``tracestate``
    and a ``baggage`` header holding only `baggage_fields` (merged into
    baggage already in the carrier). Every call gets a span id of its own as
    the ``parent-id`` of its ``traceparent``, under the request's trace (or
    the active OpenTelemetry span's, when that integration is installed); a
    request without a trace gets one started now. Secrets are never written
    unless allow-listed. Outside a request, only an active span's trace
    context is written.

    Returns the call's span id (None when no ``traceparent`` was written).
    It is logged at DEBUG on the ``asynclocal.propagation`` logger as
    ``call_span_id``; with OpenTelemetry installed it is the id of a span the
    integration started (and ended) for the call.

    Raises:
        TypeError: `carrier` is not a mutable mapping, or `request` is not a RequestContext.
    """
    call = inject_call(carrier, request=request, kind="producer")
    call.end()
    return call.span_id


def _check_carrier(carrier: object) -> None:
    if not isinstance(carrier, MutableMapping) and not hasattr(carrier, "__setitem__"):
        raise TypeError(
            f"inject() needs a mutable mapping of headers (a dict), got {type(carrier).__name__}"
        )


def inject_call(
    carrier: MutableMapping[str, str],
    *,
    request: RequestContext | None = None,
    kind: CallKind = "client",
    name: str = "propagate",
    attributes: Mapping[str, str | int] | None = None,
    target: str | None = None,
) -> OutgoingCall:
    """`inject` for one call whose end the caller reports (the HTTP client integrations).

    `name`, `kind` and `attributes` describe the call to a tracer's span;
    `target` (a URL without query or credentials, or None) is what the DEBUG
    record names. The caller must call `OutgoingCall.end()` when the call is over.
    """
    _check_carrier(carrier)
    current = request_storage.get_store()
    if request is None:
        ctx = current
    elif isinstance(request, RequestContext):
        ctx = request
    else:
        raise TypeError(
            f"inject(request=...) expects a RequestContext, got {type(request).__name__}"
        )
    cfg = get_config()
    end: Callable[[int | None, BaseException | None], None] = _no_end
    span: ActiveSpan | None = None
    if cfg.trace_context:
        active = _active_span() if ctx is current else None
        if active is not None:
            span, end = _start_call_span(active, name, kind, attributes or {})
        elif ctx is not None:
            trace_id, _ = ctx.ensure_trace()
            span = ActiveSpan(trace_id, new_span_id(), trace_flags(ctx), ctx.tracestate)
    write_fields(carrier, ctx, trace_context=cfg.trace_context, span=span)
    if span is None:
        return _NO_CALL
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "outgoing %s: trace %s, parent-id %s",
            target or "call",
            span.trace_id,
            span.span_id,
            extra={"call_span_id": span.span_id, "call_target": target},
        )
    return OutgoingCall(span.span_id, span.trace_id, end)


def write_fields(
    carrier: MutableMapping[str, str],
    ctx: RequestContext | None,
    *,
    trace_context: bool,
    span: ActiveSpan | None,
    baggage: Mapping[str, str] | None = None,
) -> None:
    """`inject`'s engine, for propagator classes: write `ctx`'s fields and `span`'s trace.

    `span` is the operation making the call (its span id becomes the
    ``parent-id``); without one, a request's trace is written under a fresh
    span id. `baggage` holds members to send besides the allow-listed fields
    (an OpenTelemetry context's baggage); allow-listed fields win on a clash.
    """
    cfg = get_config()
    if ctx is not None:
        # Ids that could not travel as a header value (a custom id holding a
        # line feed) are left out rather than breaking the client's request.
        if cfg.request_id_header and header_problem(cfg.request_id_header, ctx.request_id) is None:
            carrier[cfg.request_id_header] = ctx.request_id
        root = ctx.root_request_id or ctx.request_id
        if cfg.root_request_id_header and header_problem(cfg.root_request_id_header, root) is None:
            carrier[cfg.root_request_id_header] = root
    if trace_context:
        if span is None and ctx is not None:
            trace_id, _ = ctx.ensure_trace()
            span = ActiveSpan(trace_id, new_span_id(), trace_flags(ctx), ctx.tracestate)
        if span is not None:
            carrier["traceparent"] = format_traceparent(
                span.trace_id, span.span_id, span.trace_flags
            )
            state = parse_tracestate(span.tracestate) if span.tracestate else None
            if state:
                carrier["tracestate"] = state
    members: dict[str, str] = dict(baggage) if baggage else {}
    if ctx is not None:
        for name in sorted(cfg.baggage_fields):
            value = _field_value(ctx, name)
            if value is not None:
                members[name] = value
    if members:
        existing = parse_baggage(carrier.get("baggage"))
        existing.update(members)
        header = format_baggage(existing)
        if header:
            carrier["baggage"] = header
