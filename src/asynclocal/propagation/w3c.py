"""W3C Trace Context and W3C Baggage codecs, for carriers of your own.

::

    from asynclocal.propagation import w3c

    parsed = w3c.parse_traceparent(value)       # TraceParent | None, never raises
    state = w3c.parse_tracestate(value)         # normalised str | None
    members = w3c.parse_baggage(value)          # {key: decoded value}, bounded
    header = w3c.format_traceparent(trace_id, w3c.new_span_id(), flags)

`asynclocal.propagation.inject`/`extract` use exactly these. Every parser is
total (malformed input gives None or the valid members, never an exception),
validates with full-string matches of the specification's grammar, reads a
bounded prefix of its input and runs in linear time. The rules, and where
asynclocal chooses among the options the specification leaves, are listed in
the conformance section of docs/propagation.md.
"""

from ._w3c import (
    BAGGAGE_MAX_BYTES,
    BAGGAGE_MAX_MEMBERS,
    FLAG_RANDOM,
    FLAG_SAMPLED,
    KNOWN_FLAGS,
    TRACEPARENT_MAX_LENGTH,
    TRACESTATE_MAX_LENGTH,
    TRACESTATE_MAX_MEMBERS,
    TRACESTATE_READ_LIMIT,
    TraceParent,
    format_baggage,
    format_traceparent,
    new_span_id,
    new_trace_id,
    parse_baggage,
    parse_traceparent,
    parse_tracestate,
    valid_baggage_key,
    valid_tracestate_key,
    valid_tracestate_value,
)

__all__ = [
    "BAGGAGE_MAX_BYTES",
    "BAGGAGE_MAX_MEMBERS",
    "FLAG_RANDOM",
    "FLAG_SAMPLED",
    "KNOWN_FLAGS",
    "TRACEPARENT_MAX_LENGTH",
    "TRACESTATE_MAX_LENGTH",
    "TRACESTATE_MAX_MEMBERS",
    "TRACESTATE_READ_LIMIT",
    "TraceParent",
    "format_baggage",
    "format_traceparent",
    "new_span_id",
    "new_trace_id",
    "parse_baggage",
    "parse_traceparent",
    "parse_tracestate",
    "valid_baggage_key",
    "valid_tracestate_key",
    "valid_tracestate_value",
]
