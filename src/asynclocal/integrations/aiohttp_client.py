"""aiohttp client: outgoing requests carry the propagated headers to allow-listed targets.

::

    from asynclocal.integrations import aiohttp_client as al_aiohttp

    al_aiohttp.install()          # every ClientSession created from now on
    session = aiohttp.ClientSession(middlewares=[al_aiohttp.middleware()])   # or one session

`middleware()` (aiohttp >= 3.12) runs for every request a session sends,
redirects included, so toward non-targets copies of the headers are stripped.
On older aiohttp, `trace_config()` adds the headers to the first request only;
a redirect keeps them, so list only targets whose redirects you trust. Needs
the ``aiohttp`` extra.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

try:
    import aiohttp
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.integrations.aiohttp_client needs the 'aiohttp' extra: "
        "pip install 'asynclocal[aiohttp]'"
    ) from exc

from .._patching import Patches
from ..propagation._outgoing import TargetsArg, apply_outgoing_headers, resolve_targets
from ..propagation._targets import PropagationTargets

__all__ = ["HAS_CLIENT_MIDDLEWARE", "install", "middleware", "trace_config", "uninstall"]

#: Whether this aiohttp supports client middlewares (3.12+), which see redirects.
HAS_CLIENT_MIDDLEWARE = hasattr(aiohttp, "ClientHandlerType")

_Middleware = Callable[[Any, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]
_MARK = "_asynclocal_middleware"


def middleware(targets: TargetsArg = None) -> _Middleware:
    """A client middleware for `aiohttp.ClientSession(middlewares=[...])` (aiohttp >= 3.12).

    Raises:
        RuntimeError: this aiohttp has no client middlewares (use `trace_config`).
        ValueError / TypeError: a target pattern is malformed.
    """
    if not HAS_CLIENT_MIDDLEWARE:
        raise RuntimeError(
            f"aiohttp {aiohttp.__version__} has no client middlewares (added in 3.12); "
            "upgrade aiohttp or use asynclocal.integrations.aiohttp_client.trace_config()"
        )
    resolved = resolve_targets(targets)

    async def propagate(request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        call = apply_outgoing_headers(
            request.headers, request.url, resolved, method=getattr(request, "method", None)
        )
        try:
            response = await handler(request)
        except BaseException as exc:
            call.end(error=exc)
            raise
        call.end(status=getattr(response, "status", None))
        return response

    setattr(propagate, _MARK, True)
    return propagate


def trace_config(targets: TargetsArg = None) -> aiohttp.TraceConfig:
    """A `TraceConfig` adding the headers at request start (works on every aiohttp).

    Raises:
        ValueError / TypeError: a target pattern is malformed.
    """
    resolved = resolve_targets(targets)

    async def on_request_start(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        call = apply_outgoing_headers(
            params.headers, params.url, resolved, method=getattr(params, "method", None)
        )
        if call.pending:
            ctx.asynclocal_call = call

    async def on_request_end(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        call = getattr(ctx, "asynclocal_call", None)
        if call is not None:
            call.end(status=getattr(params.response, "status", None))

    async def on_request_exception(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        call = getattr(ctx, "asynclocal_call", None)
        if call is not None:
            call.end(error=getattr(params, "exception", None))

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    config.on_request_end.append(on_request_end)
    config.on_request_exception.append(on_request_exception)
    setattr(config, _MARK, True)
    return config


_patches = Patches()


def _patched_init(
    original: Callable[..., None], targets: PropagationTargets | None
) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if HAS_CLIENT_MIDDLEWARE:
            existing = tuple(kwargs.get("middlewares") or ())
            if not any(getattr(m, _MARK, False) for m in existing):
                kwargs["middlewares"] = (*existing, middleware(targets))
        else:
            configs = list(kwargs.get("trace_configs") or ())
            if not any(getattr(c, _MARK, False) for c in configs):
                kwargs["trace_configs"] = [*configs, trace_config(targets)]
        original(self, *args, **kwargs)

    return __init__


def install(*, targets: TargetsArg = None) -> None:
    """Propagate from every `aiohttp.ClientSession` created from now on.

    Uses `middleware()` when aiohttp supports it, else `trace_config()`.
    Sessions created before stay as they are. Idempotent (a second call
    replaces the targets); `uninstall()` undoes it.

    Raises:
        ValueError / TypeError: a target pattern is malformed.
    """
    resolved = resolve_targets(targets)
    with _patches.lock:
        init = _patches.original(aiohttp.ClientSession, "__init__")
        _patches.install([(aiohttp.ClientSession, "__init__", _patched_init(init, resolved))])


def uninstall() -> None:
    """Undo `install()` for sessions created from now on. Idempotent."""
    _patches.uninstall()
