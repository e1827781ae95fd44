"""Carry the request's identity across services: request ids, W3C Trace Context, Baggage.

Standard library only (OpenTelemetry is optional)::

    from asynclocal.propagation import inject, extract, continue_request

    headers: dict[str, str] = {}
    inject(headers)                      # caller: x-request-id, x-root-request-id,
                                         # traceparent, tracestate, baggage
    ctx = continue_request(extract(incoming_headers), method="GET", path="/")

`install()` makes every web middleware continue the incoming trace and
causation chain; `configure()` sets header names, the baggage allow-list and
the propagation targets of the HTTP client integrations. The OpenTelemetry
`TextMapPropagator` lives in `asynclocal.integrations.opentelemetry`.
"""

from ._carrier import (
    ActiveSpan,
    PropagatedContext,
    extract,
    inject,
    new_request_id,
    set_trace_source,
    trace_flags,
    write_fields,
)
from ._config import (
    SECRET_FIELDS,
    PropagationConfig,
    configure,
    get_config,
    reset_config,
)
from ._continue import continue_context, continue_request, install, installed, uninstall
from ._targets import PropagationTargets, TargetPattern
from ._w3c import (
    BAGGAGE_MAX_BYTES,
    BAGGAGE_MAX_MEMBERS,
    TraceParent,
    format_baggage,
    format_traceparent,
    new_span_id,
    new_trace_id,
    parse_baggage,
    parse_traceparent,
    parse_tracestate,
)

__all__ = [
    "BAGGAGE_MAX_BYTES",
    "BAGGAGE_MAX_MEMBERS",
    "SECRET_FIELDS",
    "ActiveSpan",
    "PropagatedContext",
    "PropagationConfig",
    "PropagationTargets",
    "TargetPattern",
    "TraceParent",
    "configure",
    "continue_context",
    "continue_request",
    "extract",
    "format_baggage",
    "format_traceparent",
    "get_config",
    "inject",
    "install",
    "installed",
    "new_request_id",
    "new_span_id",
    "new_trace_id",
    "parse_baggage",
    "parse_traceparent",
    "parse_tracestate",
    "reset_config",
    "set_trace_source",
    "trace_flags",
    "uninstall",
    "write_fields",
]
