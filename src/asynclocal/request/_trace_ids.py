"""Fresh W3C trace and span ids (stdlib only), shared by the request scope and propagation."""

from __future__ import annotations

import os

__all__ = ["ZERO_SPAN", "ZERO_TRACE", "new_span_id", "new_trace_and_span_ids", "new_trace_id"]

#: W3C Trace Context: an all-zero trace or span id is invalid.
ZERO_TRACE = "0" * 32
ZERO_SPAN = "0" * 16


def new_trace_id() -> str:
    """A random, valid (non-zero) 32-hex-digit W3C trace id."""
    while True:
        value = os.urandom(16).hex()
        if value != ZERO_TRACE:
            return value


def new_span_id() -> str:
    """A random, valid (non-zero) 16-hex-digit W3C span (parent) id."""
    while True:
        value = os.urandom(8).hex()
        if value != ZERO_SPAN:
            return value


def new_trace_and_span_ids() -> tuple[str, str]:
    """A fresh (trace id, span id) pair from one read of the system's random source."""
    raw = os.urandom(24).hex()
    trace_id, span_id = raw[:32], raw[32:]
    if trace_id == ZERO_TRACE:
        trace_id = new_trace_id()
    if span_id == ZERO_SPAN:
        span_id = new_span_id()
    return trace_id, span_id
