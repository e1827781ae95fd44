"""Process-wide propagation settings: header names, allow-lists, id policy."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .._header_rules import header_problem
from ._targets import PropagationTargets, TargetPattern
from ._w3c import valid_baggage_key

__all__ = ["SECRET_FIELDS", "PropagationConfig", "configure", "get_config", "reset_config"]

#: Request fields that are secrets: they never travel unless listed in
#: `PropagationConfig.baggage_fields` by name.
SECRET_FIELDS = frozenset({"access_token", "refresh_token", "cookies"})


@dataclass(frozen=True)
class PropagationConfig:
    """What `inject` writes, what `extract` reads, and where HTTP clients send it.

    Attributes:
        request_id_header: header carrying the caller's request id (None: not sent).
        root_request_id_header: header carrying the root of the causation chain.
        trace_context: write/read ``traceparent`` and ``tracestate``.
        baggage_fields: request fields sent as W3C Baggage members and accepted
            from incoming baggage. App fields by key, plus ``user_id``;
            secrets (``access_token``, ``refresh_token``, ``cookies``) only
            when named here explicitly. Empty by default: nothing is sent.
        reuse_request_id: a downstream hop keeps the caller's request id
            (correlation-id style) instead of getting a fresh one whose
            parent is the caller.
        sampled: the sampled flag of traces started here without OpenTelemetry.
        targets: outgoing URLs that receive headers (HTTP client integrations).
            Empty by default: nothing leaves the process.
        forward_authorization: HTTP clients send ``Authorization: Bearer
            <access_token>`` of the current request to targets (off by default).
        id_generator: makes request ids for new hops (default: 32 random hex digits).
    """

    request_id_header: str | None = "x-request-id"
    root_request_id_header: str | None = "x-root-request-id"
    trace_context: bool = True
    baggage_fields: frozenset[str] = frozenset()
    reuse_request_id: bool = False
    sampled: bool = True
    targets: PropagationTargets = field(default_factory=PropagationTargets)
    forward_authorization: bool = False
    id_generator: Callable[[], str] | None = None

    def header_names(self) -> tuple[str, ...]:
        """Every header this configuration may write (lower-case)."""
        names = [self.request_id_header, self.root_request_id_header]
        if self.trace_context:
            names += ["traceparent", "tracestate"]
        names.append("baggage")
        return tuple(n for n in names if n)


_lock = threading.Lock()
_UNSET: Any = object()
_config = PropagationConfig()


def get_config() -> PropagationConfig:
    """The current process-wide configuration."""
    return _config


def _check_header(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or header_problem(value, "") is not None:
        raise ValueError(
            f"propagation {name} must be an HTTP header name (token characters) or None, "
            f"got {value!r:.60}"
        )
    return value.lower()


def _fields(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        value = (value,)
    names = frozenset(value)
    bad = sorted(n for n in names if not valid_baggage_key(n))
    if bad:
        raise ValueError(
            f"baggage_fields {bad!r:.80} are not valid W3C Baggage keys (use letters, digits "
            "and -._~ only)"
        )
    return names


def configure(
    *,
    request_id_header: str | None = _UNSET,
    root_request_id_header: str | None = _UNSET,
    trace_context: bool = _UNSET,
    baggage_fields: Iterable[str] = _UNSET,
    reuse_request_id: bool = _UNSET,
    sampled: bool = _UNSET,
    targets: Iterable[TargetPattern] | PropagationTargets = _UNSET,
    forward_authorization: bool = _UNSET,
    id_generator: Callable[[], str] | None = _UNSET,
) -> PropagationConfig:
    """Change the given settings process-wide; return the new configuration.

    Settings not passed keep their value. The change is atomic: a concurrent
    `inject` sees either the old or the new configuration.

    ``reuse_request_id`` and ``id_generator`` are deprecated here (a
    `DeprecationWarning`): the request id is decided by the middleware's
    `asynclocal.request.RequestIdPolicy` (``reuse_request_id=``,
    ``generator=``); these settings now only reach `continue_request` and
    `continue_context` called without a policy.

    Raises:
        ValueError: a header name, baggage field or target pattern is malformed.
        TypeError: a setting has the wrong type.
    """
    global _config
    changes: dict[str, Any] = {}
    for old, new in (("reuse_request_id", reuse_request_id), ("id_generator", id_generator)):
        if new is not _UNSET:
            warnings.warn(
                f"propagation.configure({old}=...) is deprecated: the request id belongs to "
                "the RequestIdPolicy of each middleware (RequestIdPolicy(reuse_request_id=..., "
                "generator=...)); here it only reaches continue_request/continue_context "
                "called without a policy",
                DeprecationWarning,
                stacklevel=2,
            )
    if request_id_header is not _UNSET:
        changes["request_id_header"] = _check_header("request_id_header", request_id_header)
    if root_request_id_header is not _UNSET:
        changes["root_request_id_header"] = _check_header(
            "root_request_id_header", root_request_id_header
        )
    for flag, value in (
        ("trace_context", trace_context),
        ("reuse_request_id", reuse_request_id),
        ("sampled", sampled),
        ("forward_authorization", forward_authorization),
    ):
        if value is not _UNSET:
            if not isinstance(value, bool):
                raise TypeError(f"propagation {flag} must be a bool, got {value!r:.40}")
            changes[flag] = value
    if baggage_fields is not _UNSET:
        changes["baggage_fields"] = _fields(baggage_fields)
    if targets is not _UNSET:
        changes["targets"] = (
            targets if isinstance(targets, PropagationTargets) else PropagationTargets(targets)
        )
    if id_generator is not _UNSET:
        if id_generator is not None and not callable(id_generator):
            raise TypeError("propagation id_generator must be a callable returning a str, or None")
        changes["id_generator"] = id_generator
    with _lock:
        _config = replace(_config, **changes)
        return _config


def reset_config() -> PropagationConfig:
    """Restore the defaults (tests use this)."""
    global _config
    with _lock:
        _config = PropagationConfig()
        return _config
