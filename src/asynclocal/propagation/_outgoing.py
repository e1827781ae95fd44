"""Shared logic of the outgoing HTTP client integrations (httpx, requests, aiohttp)."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping

from ..request import request_storage
from ._carrier import inject
from ._config import get_config
from ._targets import PropagationTargets, TargetPattern

__all__ = ["TargetsArg", "apply_outgoing_headers", "resolve_targets"]

TargetsArg = Iterable[TargetPattern] | PropagationTargets | None


def resolve_targets(targets: TargetsArg) -> PropagationTargets | None:
    """Validate an integration's `targets=` argument (None: use the configured targets).

    Raises:
        ValueError / TypeError: a pattern is malformed.
    """
    if targets is None or isinstance(targets, PropagationTargets):
        return targets
    return PropagationTargets(targets)


def apply_outgoing_headers(
    headers: MutableMapping[str, str], url: object, targets: PropagationTargets | None
) -> None:
    """Add the propagated headers to an outgoing request, or strip leaked copies.

    Toward an allow-listed target, each header is added unless the request
    already has it (a header set by the caller or by an OpenTelemetry
    instrumentation wins). Toward any other URL, headers whose value equals
    what would be propagated are removed: a redirect to a third party copies
    the previous request's headers, and this keeps ids from leaking there.
    `headers` must be case-insensitive (httpx, requests and aiohttp's are).
    """
    cfg = get_config()
    ours: dict[str, str] = {}
    inject(ours)
    ctx = request_storage.get_store()
    if cfg.forward_authorization and ctx is not None and ctx.access_token:
        ours["authorization"] = f"Bearer {ctx.access_token}"
    if not ours:
        return
    allowed = (targets if targets is not None else cfg.targets).matches(url)
    for name, value in ours.items():
        if allowed:
            if name not in headers:
                headers[name] = value
        elif headers.get(name) == value:
            del headers[name]
