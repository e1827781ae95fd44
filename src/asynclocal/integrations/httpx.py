"""httpx: outgoing requests carry the propagated headers to allow-listed targets.

::

    from asynclocal.integrations import httpx as al_httpx

    al_httpx.install()                       # every httpx.Client / AsyncClient created after
    client = al_httpx.instrument(httpx.Client())   # or one client (sync or async)

Targets come from `asynclocal.propagation.configure(targets=[...])` unless a
`targets=` argument is given. Needs the ``httpx`` extra.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.integrations.httpx needs the 'httpx' extra: pip install 'asynclocal[httpx]'"
    ) from exc

from .._patching import Patches
from ..propagation._outgoing import (
    OutgoingCall,
    TargetsArg,
    apply_outgoing_headers,
    resolve_targets,
)
from ..propagation._targets import PropagationTargets

__all__ = ["async_request_hook", "install", "instrument", "request_hook", "uninstall"]

C = TypeVar("C", httpx.Client, httpx.AsyncClient)

_MARK = "_asynclocal_hook"
_CALL = "asynclocal.call"


def _send(request: httpx.Request, targets: PropagationTargets | None) -> None:
    call = apply_outgoing_headers(request.headers, request.url, targets, method=request.method)
    if call.pending:
        # Ended by the response hook `instrument` adds, or when the request
        # is dropped (an error before any response, a bare request_hook).
        request.extensions[_CALL] = call
        weakref.finalize(request, call.end)


def _received(response: httpx.Response) -> None:
    try:
        call = response.request.extensions.pop(_CALL, None)
    except Exception:  # a response without a request (built by hand)
        return
    if isinstance(call, OutgoingCall):
        call.end(status=response.status_code)


def _response_hook(response: httpx.Response) -> None:
    _received(response)


async def _async_response_hook(response: httpx.Response) -> None:
    _received(response)


setattr(_response_hook, _MARK, True)
setattr(_async_response_hook, _MARK, True)


def request_hook(targets: TargetsArg = None) -> Callable[[httpx.Request], None]:
    """An httpx ``request`` event hook for `httpx.Client(event_hooks=...)`.

    Runs for every request the client sends, redirects included: adds the
    headers toward targets, strips leaked copies toward anything else.

    Raises:
        ValueError / TypeError: a target pattern is malformed.
    """
    resolved = resolve_targets(targets)

    def hook(request: httpx.Request) -> None:
        _send(request, resolved)

    setattr(hook, _MARK, True)
    return hook


def async_request_hook(targets: TargetsArg = None) -> Callable[[httpx.Request], Any]:
    """The `request_hook` for `httpx.AsyncClient` (async hooks are awaited)."""
    resolved = resolve_targets(targets)

    async def hook(request: httpx.Request) -> None:
        _send(request, resolved)

    setattr(hook, _MARK, True)
    return hook


def instrument(client: C, *, targets: TargetsArg = None) -> C:
    """Add the propagation hook to `client` (sync or async); return it.

    Idempotent: a second call replaces the hook (and its targets), including
    the one `install()` added.

    Raises:
        TypeError: `client` is not an httpx.Client or httpx.AsyncClient.
    """
    on_response: Callable[[httpx.Response], Any]
    if isinstance(client, httpx.AsyncClient):
        hook: Callable[[httpx.Request], Any] = async_request_hook(targets)
        on_response = _async_response_hook
    elif isinstance(client, httpx.Client):
        hook = request_hook(targets)
        on_response = _response_hook
    else:
        raise TypeError(
            "instrument() expects an httpx.Client or httpx.AsyncClient, got "
            f"{type(client).__name__}"
        )
    hooks: dict[str, list[Callable[..., Any]]] = dict(client.event_hooks)
    # Replace an earlier propagation hook (from install() or a previous call): the
    # latest targets win and the headers are never handled twice.
    others: list[Callable[..., Any]] = [
        h for h in hooks.get("request", []) if not getattr(h, _MARK, False)
    ]
    hooks["request"] = [*others, hook]
    responses: list[Callable[..., Any]] = [
        h for h in hooks.get("response", []) if not getattr(h, _MARK, False)
    ]
    hooks["response"] = [on_response, *responses]
    client.event_hooks = hooks
    return client


_patches = Patches()


def install(*, targets: TargetsArg = None) -> None:
    """Instrument every `httpx.Client` and `httpx.AsyncClient` created from now on.

    Also covers the module functions (`httpx.get`, ...), which create a
    client per call. Clients created before stay as they are (use
    `instrument`). Idempotent; call `uninstall()` to undo.

    Raises:
        ValueError / TypeError: a target pattern is malformed.
    """
    resolved: PropagationTargets | None = resolve_targets(targets)
    with _patches.lock:
        _patches.install(
            [
                (cls, "__init__", _patched_init(_patches.original(cls, "__init__"), resolved))
                for cls in (httpx.Client, httpx.AsyncClient)
            ]
        )


def _patched_init(
    original: Callable[..., None], targets: PropagationTargets | None
) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        instrument(self, targets=targets)

    return __init__


def uninstall() -> None:
    """Undo `install()` for clients created from now on. Idempotent."""
    _patches.uninstall()
