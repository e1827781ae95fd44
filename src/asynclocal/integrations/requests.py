"""requests: outgoing requests carry the propagated headers to allow-listed targets.

::

    from asynclocal.integrations import requests as al_requests

    al_requests.install()                           # every Session (and requests.get ...)
    session = al_requests.instrument(requests.Session())   # or one session

`Session.send` runs for every request a session sends, redirects included,
so toward non-targets copies of the headers are stripped. Targets come from
`asynclocal.propagation.configure(targets=[...])` unless `targets=` is
given. Needs the ``requests`` extra.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

try:
    import requests
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.integrations.requests needs the 'requests' extra: "
        "pip install 'asynclocal[requests]'"
    ) from exc

from .._patching import Patches
from ..propagation._outgoing import TargetsArg, apply_outgoing_headers, resolve_targets
from ..propagation._targets import PropagationTargets

__all__ = ["install", "instrument", "uninstall"]

_MARK = "_asynclocal_wrapped"


_INSTANCE_MARK = "_asynclocal_instrumented"


def _wrap_send(
    send: Callable[..., requests.Response],
    targets: PropagationTargets | None,
    *,
    unbound: bool,
) -> Callable[..., requests.Response]:
    @functools.wraps(send)
    def wrapped(*args: Any, **kwargs: Any) -> requests.Response:
        # a session instrumented on its own is handled by its instance wrapper only
        if not (unbound and args and getattr(args[0], _INSTANCE_MARK, False)):
            request = kwargs.get("request")
            if request is None:
                request = next((a for a in args if isinstance(a, requests.PreparedRequest)), None)
            if request is not None:
                call = apply_outgoing_headers(
                    request.headers, request.url, targets, method=request.method
                )
                try:
                    response = send(*args, **kwargs)
                except BaseException as exc:
                    call.end(error=exc)
                    raise
                call.end(status=response.status_code)
                return response
        return send(*args, **kwargs)

    setattr(wrapped, _MARK, True)
    return wrapped


def instrument(session: requests.Session, *, targets: TargetsArg = None) -> requests.Session:
    """Make `session` send the propagated headers to targets; return it.

    Idempotent: a second call replaces the targets. Its targets win over those
    of `install()`.

    Raises:
        TypeError: `session` is not a requests.Session.
        ValueError: a target pattern is malformed.
    """
    if not isinstance(session, requests.Session):
        raise TypeError(f"instrument() expects a requests.Session, got {type(session).__name__}")
    resolved = resolve_targets(targets)
    send = session.__dict__.get("_asynclocal_original_send") or session.send
    session.__dict__["_asynclocal_original_send"] = send
    session.send = _wrap_send(send, resolved, unbound=False)  # type: ignore[method-assign]
    setattr(session, _INSTANCE_MARK, True)
    return session


_patches = Patches()


def install(*, targets: TargetsArg = None) -> None:
    """Patch `requests.Session.send`: every session (and `requests.get` ...) propagates.

    Idempotent (a second call replaces the targets); `uninstall()` undoes it.

    Raises:
        ValueError / TypeError: a target pattern is malformed.
    """
    resolved = resolve_targets(targets)
    with _patches.lock:
        send = _patches.original(requests.Session, "send")
        _patches.install([(requests.Session, "send", _wrap_send(send, resolved, unbound=True))])


def uninstall() -> None:
    """Undo `install()`. Idempotent."""
    _patches.uninstall()
