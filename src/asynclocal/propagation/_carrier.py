"""`inject` / `extract`: the request's identity in a carrier (headers, message metadata)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from ..request import RequestContext, generate_request_id, is_valid_request_id, request_storage
from ._config import PropagationConfig, get_config
from ._w3c import (
    format_baggage,
    format_traceparent,
    parse_baggage,
    parse_traceparent,
    parse_tracestate,
)

__all__ = [
    "ActiveSpan",
    "PropagatedContext",
    "extract",
    "inject",
    "new_request_id",
    "set_trace_source",
    "trace_flags",
    "write_fields",
]


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


def _active_span() -> ActiveSpan | None:
    source = _trace_source
    if source is None:
        return None
    try:
        return source()
    except Exception:  # a tracer failure must never break the request
        return None


def trace_flags(ctx: RequestContext) -> int:
    """The W3C trace flags of `ctx`'s trace (01 = sampled)."""
    if ctx.trace_flags is not None:
        return ctx.trace_flags
    return 1 if get_config().sampled else 0


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


def _header_getter(carrier: Mapping[str, str]) -> Callable[[str], object]:
    """A case-insensitive lookup on any mapping (dict, CIMultiDict, httpx.Headers...)."""
    lowered: dict[str, object] | None = None

    def get(name: str) -> object:
        nonlocal lowered
        value: object
        try:
            value = carrier.get(name)
        except Exception:
            value = None
        if value is not None:
            return value
        if lowered is None:
            try:
                lowered = {str(k).lower(): v for k, v in carrier.items()}
            except Exception:
                lowered = {}
        value = lowered.get(name)
        if isinstance(value, (list, tuple)) and value:
            value = value[0]
        return value

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


def inject(carrier: MutableMapping[str, str], *, request: RequestContext | None = None) -> None:
    """Write the current (or given) request's propagated fields into `carrier`.

    Writes the request id and root id headers, ``traceparent``/``tracestate``
    (of the active OpenTelemetry span when the integration is installed, else
    of the request; a request without a trace gets one started now) and a
    ``baggage`` header holding only `baggage_fields` (merged into baggage
    already in the carrier). Secrets are never written unless allow-listed.
    Outside a request, only an active span's trace context is written.

    Raises:
        TypeError: `carrier` is not a mutable mapping, or `request` is not a RequestContext.
    """
    if not isinstance(carrier, MutableMapping) and not hasattr(carrier, "__setitem__"):
        raise TypeError(
            f"inject() needs a mutable mapping of headers (a dict), got {type(carrier).__name__}"
        )
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
    span = _active_span() if ctx is current else None
    write_fields(carrier, ctx, trace_context=cfg.trace_context, span=span)


def write_fields(
    carrier: MutableMapping[str, str],
    ctx: RequestContext | None,
    *,
    trace_context: bool,
    span: ActiveSpan | None,
    baggage: Mapping[str, str] | None = None,
) -> None:
    """`inject`'s engine, for propagator classes: write `ctx`'s fields and `span`'s trace.

    `baggage` holds members to send besides the allow-listed fields (an
    OpenTelemetry context's baggage); allow-listed fields win on a clash.
    """
    cfg = get_config()
    if ctx is not None:
        if cfg.request_id_header:
            carrier[cfg.request_id_header] = ctx.request_id
        if cfg.root_request_id_header:
            carrier[cfg.root_request_id_header] = ctx.root_request_id or ctx.request_id
    if trace_context:
        if span is not None:
            carrier["traceparent"] = format_traceparent(
                span.trace_id, span.span_id, span.trace_flags
            )
            if span.tracestate:
                carrier["tracestate"] = span.tracestate
        elif ctx is not None:
            trace_id, span_id = ctx.ensure_trace()
            carrier["traceparent"] = format_traceparent(trace_id, span_id, trace_flags(ctx))
            if ctx.tracestate:
                carrier["tracestate"] = ctx.tracestate
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
