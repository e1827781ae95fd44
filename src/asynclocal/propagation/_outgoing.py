"""Shared logic of the outgoing HTTP client integrations (httpx, requests, aiohttp)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, MutableMapping
from urllib.parse import urlsplit

from ..request import request_storage
from ._carrier import _NO_CALL, OutgoingCall, _active_span, inject_call, log, write_fields
from ._config import get_config
from ._targets import PropagationTargets, TargetPattern
from ._w3c import parse_traceparent, parse_tracestate

__all__ = ["OutgoingCall", "TargetsArg", "apply_outgoing_headers", "resolve_targets"]

TargetsArg = Iterable[TargetPattern] | PropagationTargets | None

_warned_lock = threading.Lock()
_warned = False

EMPTY_TARGETS_WARNING = (
    "asynclocal: an HTTP client integration is installed but the propagation target "
    "allow-list is empty, so outgoing requests carry no request id, trace context or "
    "baggage. List your own services with asynclocal.propagation.configure(targets=[...]) "
    "or the integration's targets= argument. (Logged once per process.)"
)


def resolve_targets(targets: TargetsArg) -> PropagationTargets | None:
    """Validate an integration's `targets=` argument (None: use the configured targets).

    Raises:
        ValueError / TypeError: a pattern is malformed.
    """
    if targets is None or isinstance(targets, PropagationTargets):
        return targets
    return PropagationTargets(targets)


def _warn_empty_targets() -> None:
    """Say once per process that an empty allow-list keeps everything in."""
    global _warned
    if _warned:
        return
    with _warned_lock:
        if _warned:
            return
        _warned = True
    log.warning(EMPTY_TARGETS_WARNING)


def _reset_empty_targets_warning() -> None:
    """Let the next call warn again (tests)."""
    global _warned
    with _warned_lock:
        _warned = False


def _describe(url: object) -> tuple[str, dict[str, str | int]]:
    """The URL without query, fragment or credentials, and its span attributes."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "request", {}
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    shown = f"{parts.scheme}://{netloc}{parts.path or '/'}"
    attributes: dict[str, str | int] = {"url.full": shown, "server.address": host}
    if port is not None:
        attributes["server.port"] = port
    return shown, attributes


def apply_outgoing_headers(
    headers: MutableMapping[str, str],
    url: object,
    targets: PropagationTargets | None,
    *,
    method: str | None = None,
) -> OutgoingCall:
    """Add the propagated headers to an outgoing request, or strip leaked copies.

    Toward an allow-listed target, each header is added unless the request
    already has it (a header set by the caller or by an OpenTelemetry
    instrumentation wins; a ``traceparent`` already there keeps its
    ``tracestate`` too). The call gets a span id of its own (see `inject`);
    the caller ends the returned `OutgoingCall` when the response is in.
    Toward any other URL, copies of our headers are removed (a ``traceparent``
    of our trace, and headers equal to what would be propagated): a redirect
    to a third party copies the previous request's headers, and this keeps
    ids from leaking there. With an empty allow-list, a warning is logged
    once per process. `headers` must be case-insensitive (httpx, requests
    and aiohttp's are).
    """
    cfg = get_config()
    ctx = request_storage.get_store()
    active = _active_span() if cfg.trace_context else None
    if ctx is None and active is None:
        return _NO_CALL
    allow = targets if targets is not None else cfg.targets
    if not allow:
        _warn_empty_targets()
    allowed = allow.matches(url)
    ours: dict[str, str] = {}
    call = _NO_CALL
    if allowed and cfg.trace_context and "traceparent" not in headers:
        shown, attributes = _describe(url)
        verb = (method or "").upper() or "HTTP"
        attributes["http.request.method"] = verb
        call = inject_call(
            ours, kind="client", name=verb, attributes=attributes, target=f"{verb} {shown}"
        )
    else:
        write_fields(ours, ctx, trace_context=False, span=None)
    if cfg.forward_authorization and ctx is not None and ctx.access_token:
        ours["authorization"] = f"Bearer {ctx.access_token}"
    if allowed:
        for name, value in ours.items():
            if name not in headers:
                headers[name] = value
        return call
    for name, value in ours.items():
        if headers.get(name) == value:
            del headers[name]
    if cfg.trace_context:
        _strip_our_trace(headers, ctx.trace_id if active is None and ctx else None, active)
    return call


def _strip_our_trace(
    headers: MutableMapping[str, str], trace_id: str | None, active: object
) -> None:
    """Remove a ``traceparent`` of our trace (and its ``tracestate``) from `headers`."""
    if active is not None:
        trace_id = getattr(active, "trace_id", None)
    if trace_id is None:
        return
    parsed = parse_traceparent(headers.get("traceparent"))
    if parsed is None or parsed.trace_id != trace_id:
        return
    del headers["traceparent"]
    if "tracestate" in headers:
        ctx = request_storage.get_store()
        state = getattr(active, "tracestate", None) if active is not None else None
        if state is None and ctx is not None:
            state = ctx.tracestate
        if state is not None and parse_tracestate(headers.get("tracestate")) == parse_tracestate(
            state
        ):
            del headers["tracestate"]
