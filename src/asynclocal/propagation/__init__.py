"""Carry the request's identity across services: request ids, W3C Trace Context, Baggage.

Standard library only (OpenTelemetry is optional)::

    from asynclocal.propagation import inject, extract, continue_request

    headers: dict[str, str] = {}
    inject(headers)                      # caller: x-request-id, x-root-request-id,
                                         # traceparent (a parent-id per call),
                                         # tracestate, baggage
    ctx = continue_request(extract(incoming_headers), method="GET", path="/")

`install()` makes every web middleware continue the incoming trace and
causation chain; `configure()` sets the wire formats (header names, the
baggage allow-list) and the propagation targets of the HTTP client
integrations. The W3C codecs are `asynclocal.propagation.w3c`; the
OpenTelemetry `TextMapPropagator` lives in `asynclocal.integrations.opentelemetry`.
"""

from typing import TYPE_CHECKING

from . import w3c
from ._carrier import PropagatedContext, extract, inject
from ._config import (
    SECRET_FIELDS,
    PropagationConfig,
    configure,
    get_config,
    reset_config,
)
from ._continue import continue_context, continue_request, install, installed, uninstall
from ._targets import PropagationTargets, TargetPattern

__all__ = [
    "SECRET_FIELDS",
    "PropagatedContext",
    "PropagationConfig",
    "PropagationTargets",
    "TargetPattern",
    "configure",
    "continue_context",
    "continue_request",
    "extract",
    "get_config",
    "inject",
    "install",
    "installed",
    "reset_config",
    "uninstall",
    "w3c",
]

# Names this package exported before the codecs moved to `w3c` and the hooks
# of the integrations went private: still importable, no longer part of the API.
_MOVED = {
    **{name: ("._w3c", name) for name in w3c.__all__},
    "ActiveSpan": ("._carrier", "ActiveSpan"),
    "new_request_id": ("._carrier", "new_request_id"),
    "set_trace_source": ("._carrier", "set_trace_source"),
    "trace_flags": ("._carrier", "trace_flags"),
    "write_fields": ("._carrier", "write_fields"),
}

if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        moved = _MOVED.get(name)
        if moved is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import importlib

        return getattr(importlib.import_module(moved[0], __name__), moved[1])
