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
import threading
from collections.abc import Callable
from typing import Any

try:
    import requests
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.integrations.requests needs the 'requests' extra: "
        "pip install 'asynclocal[requests]'"
    ) from exc

from ..propagation._outgoing import TargetsArg, apply_outgoing_headers, resolve_targets
from ..propagation._targets import PropagationTargets

__all__ = ["install", "instrument", "uninstall"]

_MARK = "_asynclocal_wrapped"


def _wrap_send(
    send: Callable[..., requests.Response], targets: PropagationTargets | None
) -> Callable[..., requests.Response]:
    @functools.wraps(send)
    def wrapped(*args: Any, **kwargs: Any) -> requests.Response:
        request = kwargs.get("request")
        if request is None:
            # unbound (class patch): (self, request, ...); bound: (request, ...)
            request = next((a for a in args if isinstance(a, requests.PreparedRequest)), None)
        if request is not None:
            apply_outgoing_headers(request.headers, request.url, targets)
        return send(*args, **kwargs)

    setattr(wrapped, _MARK, True)
    return wrapped


def instrument(session: requests.Session, *, targets: TargetsArg = None) -> requests.Session:
    """Make `session` send the propagated headers to targets; return it. Idempotent.

    Raises:
        TypeError: `session` is not a requests.Session.
        ValueError: a target pattern is malformed.
    """
    if not isinstance(session, requests.Session):
        raise TypeError(f"instrument() expects a requests.Session, got {type(session).__name__}")
    resolved = resolve_targets(targets)
    if getattr(session.send, _MARK, False):
        return session
    session.send = _wrap_send(session.send, resolved)  # type: ignore[method-assign]
    return session


_lock = threading.Lock()
_original: list[Callable[..., requests.Response]] = []


def install(*, targets: TargetsArg = None) -> None:
    """Patch `requests.Session.send`: every session (and `requests.get` ...) propagates.

    Idempotent (a second call replaces the targets); `uninstall()` undoes it.

    Raises:
        ValueError / TypeError: a target pattern is malformed.
    """
    resolved = resolve_targets(targets)
    with _lock:
        if not _original:
            _original.append(requests.Session.send)
        requests.Session.send = _wrap_send(_original[0], resolved)  # type: ignore[method-assign]


def uninstall() -> None:
    """Undo `install()`. Idempotent."""
    with _lock:
        if _original:
            requests.Session.send = _original.pop()  # type: ignore[method-assign]
