"""Capture the request fields when a `LogRecord` is created (a record factory)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from asynclocal.logging._fields import CAPTURED_ATTR, capture, check_fields

__all__ = ["capture_at_creation", "capturing_at_creation", "stop_capture_at_creation"]

_lock = threading.Lock()


class _CapturingFactory:
    """Wraps the previous record factory; adds the captured fields to each record."""

    __slots__ = ("active", "fields", "previous")

    def __init__(self, previous: Callable[..., logging.LogRecord], fields: tuple[str, ...]):
        self.previous = previous
        self.fields = fields
        self.active = True

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        if self.active and CAPTURED_ATTR not in record.__dict__:
            record.__dict__[CAPTURED_ATTR] = capture(self.fields, record.exc_info)
        return record


_factory: _CapturingFactory | None = None


def capture_at_creation(fields: Iterable[str] = ()) -> None:
    """Make every stdlib `LogRecord` capture the request fields when it is created.

    Wraps the current ``logging`` record factory (other wrappers, e.g.
    OpenTelemetry's, keep working). With it, a `ContextFilter` anywhere — even
    only on a ``QueueListener``'s handlers, in another thread — writes the
    request each record was logged in. Only records that pass the level check
    are created, so dropped records cost nothing. Idempotent: calling it again
    only replaces `fields`. `install()` calls it.

    Raises:
        TypeError / ValueError: invalid `fields` (see `ContextFilter`).
    """
    global _factory
    checked = check_fields("capture_at_creation", fields)
    with _lock:
        if _factory is not None and _factory.active:
            _factory.fields = checked
            return
        _factory = _CapturingFactory(logging.getLogRecordFactory(), checked)
        logging.setLogRecordFactory(_factory)


def stop_capture_at_creation() -> None:
    """Undo `capture_at_creation()`. Idempotent.

    The previous factory is restored when ours is still the current one;
    otherwise (another library wrapped it since) ours just stops capturing.
    """
    global _factory
    with _lock:
        if _factory is None:
            return
        _factory.active = False
        if logging.getLogRecordFactory() is _factory:
            logging.setLogRecordFactory(_factory.previous)
        _factory = None


def capturing_at_creation() -> bool:
    """True while `capture_at_creation()` is in effect."""
    return _factory is not None and _factory.active
