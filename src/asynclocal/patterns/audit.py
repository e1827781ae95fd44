"""Audit records tagged with who did what, in which request (stdlib `logging`).

::

    audit("room.rename", target=room.id, old=room.name, new=new_name)

    @audited("room.delete", target=lambda room: room.id)
    async def delete_room(room): ...

Every record goes to logger ``asynclocal.audit`` (or the one given) with a
JSON-friendly ``extra``: ``request_id`` and ``user_id`` as top-level record
attributes (the names the logging integration uses) and an ``audit`` dict::

    {"action": "room.rename", "target": "r-7", "outcome": "success",
     "user_id": "u-1", "request_id": "4f0c...", "details": {"old": "a", "new": "b"}}

Outside a request the user and request id are None (a system action). Token
fields are never read, so secrets cannot reach the audit trail through here.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from ..request._context import RequestRejected, request_storage

__all__ = ["audit", "audit_logger", "audited"]

P = ParamSpec("P")
R = TypeVar("R")

audit_logger = logging.getLogger("asynclocal.audit")

_PLAIN = (str, int, float, bool, type(None))


def _jsonable(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


def audit(
    action: str,
    target: Any = None,
    *,
    outcome: str = "success",
    level: int = logging.INFO,
    logger: logging.Logger | None = None,
    **details: Any,
) -> dict[str, Any]:
    """Log one audit record for the current request's user; return the ``audit`` dict.

    `target` and `details` are converted to JSON-friendly values (other
    objects become their ``str``). The message reads
    ``"audit room.rename target=r-7 outcome=success user=u-1"``.

    Raises:
        TypeError: `action` or `outcome` is not a non-empty string.
    """
    if not isinstance(action, str) or not action:
        raise TypeError(
            f"audit(action) must be a non-empty str such as 'room.rename', got {action!r:.40}"
        )
    if not isinstance(outcome, str) or not outcome:
        raise TypeError(f"audit(outcome=...) must be a non-empty str, got {outcome!r:.40}")
    ctx = request_storage.get_store()
    user_id = None if ctx is None else ctx.user_id
    request_id = None if ctx is None else ctx.request_id
    record = {
        "action": action,
        "target": _jsonable(target),
        "outcome": outcome,
        "user_id": user_id,
        "request_id": request_id,
        "details": _jsonable(details),
    }
    log = logger if logger is not None else audit_logger
    if log.isEnabledFor(level):
        log.log(
            level,
            "audit %s target=%s outcome=%s user=%s",
            action,
            record["target"],
            outcome,
            user_id,
            extra={"audit": record, "request_id": request_id, "user_id": user_id},
        )
    return record


def audited(
    action: str,
    *,
    target: Callable[..., Any] | None = None,
    logger: logging.Logger | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a sync or ``async`` function to audit every call after it finishes.

    Outcome ``success`` when it returns, ``denied`` when it raises a
    `RequestRejected` with status 401 or 403 (e.g. `rbac.Forbidden`),
    ``error`` otherwise (``details.error`` holds the exception type); the
    exception propagates. `target(*args, **kwargs)` computes the target from
    the call's arguments; if it raises, the target is recorded as None.

    Raises:
        TypeError: `action` is not a non-empty string or `target` is not callable.
    """
    if not isinstance(action, str) or not action:
        raise TypeError(f"audited(action) must be a non-empty str, got {action!r:.40}")
    if target is not None and not callable(target):
        raise TypeError(
            f"audited(target=...) must be a callable(*args), got {type(target).__name__}"
        )

    def target_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if target is None:
            return None
        try:
            return target(*args, **kwargs)
        except Exception:
            return None

    def report(args: tuple[Any, ...], kwargs: dict[str, Any], exc: BaseException | None) -> None:
        if exc is None:
            audit(action, target_of(args, kwargs), logger=logger)
            return
        if isinstance(exc, RequestRejected) and exc.status_code in (401, 403):
            outcome, details = "denied", {"reason": str(exc)}
        else:
            outcome, details = "error", {"error": type(exc).__name__}
        audit(
            action,
            target_of(args, kwargs),
            outcome=outcome,
            level=logging.WARNING,
            logger=logger,
            **details,
        )

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if not callable(fn):
            raise TypeError(f"@audited(...) decorates functions, got {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn):
            async_fn = cast(Callable[..., Any], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    result = await async_fn(*args, **kwargs)
                except BaseException as exc:
                    report(args, kwargs, exc)
                    raise
                report(args, kwargs, None)
                return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                report(args, kwargs, exc)
                raise
            report(args, kwargs, None)
            return result

        return wrapper

    return decorate
