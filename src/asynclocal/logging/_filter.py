"""`ContextFilter`: the current request's fields on every stdlib `LogRecord`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, cast

from asynclocal.logging._factory import capture_at_creation, stop_capture_at_creation
from asynclocal.logging._fields import (
    CAPTURED_ATTR,
    STANDARD_FIELDS,
    _get_ident,
    _process_id,
    capture,
    check_options,
    created_here,
    values_of,
)
from asynclocal.logging._format import SOURCE_ATTR, cleaned_record, cleaning_formatter
from asynclocal.logging._redact import Redactor
from asynclocal.request import request_storage

__all__ = ["ContextFilter", "install", "uninstall"]

_ALL: tuple[str, ...] = STANDARD_FIELDS
# The attributes of a record made by Logger.makeRecord without extras, plus ours.
_PLAIN_LEN = len(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) + 1
# A filter may hand its handler a record of its own (Python 3.12+).
_FILTER_MAY_RETURN_A_RECORD = sys.version_info >= (3, 12)


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``trace_id``, ``span_id``, ``user_id`` and app fields to records.

    Every record passing the filter gets one attribute per field, so a format
    string such as ``"%(asctime)s [%(request_id)s] %(message)s"`` works
    everywhere: outside a request (or when a value is missing) the attribute is
    `placeholder` (default ``"-"``), never absent. The filter only *adds*
    attributes: the message, args, extras and traceback every other handler
    sees are never changed.

    Values are captured once per record, in the thread and task that logged
    it — when the record is created if `capture_at_creation()` (or `install()`)
    is in effect, else when it first meets a `ContextFilter` — and stored on
    the record (``record._asynclocal_context``); later filters and formatters
    reuse them. A filter running in another thread than the one that created
    the record (a ``QueueListener``) never reads that thread's context: it
    uses the captured values or the placeholder. So with a
    ``QueueHandler``/``QueueListener``, attach the filter to the
    ``QueueHandler`` or use `install()`.

    Where to attach: a filter on a *handler* sees records from every logger that
    reaches the handler (the usual choice); a filter on a *logger* sees only
    records logged through that very logger, not those propagated from its
    children.

    Masking and escaping are the formatter's work (`asynclocal.logging.Formatter`,
    `JsonFormatter`; `install()` sets them up). `redact` and `escape` here are
    for a handler whose formatter does not clean: on Python 3.12+ the filter
    then hands *its handler* a masked, escaped copy of a record that needs it
    (the stdlib's per-handler record replacement), other handlers keep the
    original; Python 3.10/3.11 have no such hand-over, so there the filter
    masks nothing and the formatter must.
    The request's `access_token`/`refresh_token` are never read into a record.

    Args:
        name: as for `logging.Filter` (only records of this logger subtree pass).
        fields: app field names read with ``RequestContext.get(name)``.
        placeholder: the text used when there is no value.
        redact: True (default redactor), False, or a `Redactor` (see above).
        escape: escape control characters (see above).

    Raises:
        TypeError / ValueError: invalid `fields`, `placeholder` or `redact`.
    """

    def __init__(
        self,
        name: str = "",
        *,
        fields: Iterable[str] = (),
        placeholder: str = "-",
        redact: bool | Redactor = True,
        escape: bool = True,
    ) -> None:
        super().__init__(name)
        self.fields, self.redactor = check_options(
            "ContextFilter", fields, placeholder, redact, allow_none=False
        )
        self.placeholder = placeholder
        self.escape = bool(escape)
        self._names = frozenset(_ALL + self.fields)
        self._order = _ALL + self.fields
        self._last: tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]] | None = None
        self._cleans = _FILTER_MAY_RETURN_A_RECORD and (self.redactor is not None or self.escape)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.nlen and not super().filter(record):
            return False
        attrs = record.__dict__
        fields = self.fields
        captured: dict[str, Any] | None = attrs.get(CAPTURED_ATTR)
        if captured is None:
            here = record.thread == _get_ident() and record.process == _process_id[0]
            ctx = request_storage.get_store() if here or created_here(record) else None
            if ctx is not None:
                # Consecutive lines of a request mostly hold the same values: the
                # dicts made for the last ones are reused (they are never changed).
                values = values_of(ctx, fields)
                last = self._last
                if last is None or last[0] != values:
                    shown = self.placeholder
                    last = (
                        values,
                        dict(zip(self._order, values)),
                        {k: shown if v is None else v for k, v in zip(self._order, values)},
                    )
                    self._last = last
                attrs[CAPTURED_ATTR] = last[1]
                # A record without extras has exactly the attributes of a new record.
                if len(attrs) == _PLAIN_LEN or attrs.keys().isdisjoint(self._names):
                    attrs.update(last[2])
                    if self._cleans:
                        return self._done(record)
                    return True
                captured = last[1]
            else:
                captured = capture(fields, record.exc_info, current=False)
                attrs[CAPTURED_ATTR] = captured
        elif fields and not captured.keys() >= self._names:
            fresh = capture(fields, record.exc_info, current=created_here(record))
            captured = {**captured, **{n: fresh.get(n) for n in fields if n not in captured}}
            attrs[CAPTURED_ATTR] = captured
        placeholder = self.placeholder
        if attrs.keys().isdisjoint(self._names):
            # The common case: nothing set yet; an explicit `extra=` wins otherwise.
            for name, value in captured.items():
                attrs[name] = placeholder if value is None else value
        else:
            for name, value in captured.items():
                if name not in attrs:
                    attrs[name] = placeholder if value is None else value
        return self._done(record)

    def _done(self, record: logging.LogRecord) -> bool:
        if self._cleans:
            # Python 3.12+: a returned record replaces this one for this handler only.
            # Formatters of this package clean the original themselves (SOURCE_ATTR).
            copy = cleaned_record(record, self.redactor, self.escape, None)[0]
            if copy is not record:
                copy.__dict__[SOURCE_ATTR] = (record, copy.msg)
            return cast("bool", copy)
        return True


def _target(logger: logging.Logger | str | None) -> logging.Logger:
    if logger is None or isinstance(logger, str):
        return logging.getLogger(logger)
    if isinstance(logger, logging.Logger):
        return logger
    raise TypeError(f"logger must be a logging.Logger, a logger name or None, got {logger!r:.60}")


def install(
    logger: logging.Logger | str | None = None,
    *,
    fields: Iterable[str] = (),
    placeholder: str = "-",
    redact: bool | Redactor = True,
    escape: bool = True,
    at_creation: bool = True,
) -> ContextFilter:
    """Attach one `ContextFilter` to every handler of `logger` (default: the root logger).

    Call it after logging is configured (``logging.basicConfig()``,
    ``dictConfig``). Each handler also gets a formatter that masks and (with
    `escape`) escapes on its own copy: a plain ``logging.Formatter`` (or none)
    becomes an `asynclocal.logging.Formatter` with the same format, this
    package's formatters are kept, any other is wrapped (without escaping when
    it writes JSON). Idempotent: a `ContextFilter` already on a handler is
    replaced, so calling it twice never doubles the work. A ``QueueHandler``
    among the handlers gets the filter too, which is what makes the listener
    thread print the right request. With `at_creation` (default) it also calls
    `capture_at_creation(fields)`, so records reaching other handlers later
    (added after this call, or on a ``QueueListener``) carry their request
    too. Returns the filter.

    Raises:
        ValueError: the logger has no handlers yet (configure logging first).
        TypeError / ValueError: invalid arguments (see `ContextFilter`).
    """
    target = _target(logger)
    if not target.handlers:
        raise ValueError(
            f"logger {target.name!r} has no handlers: configure logging first "
            "(logging.basicConfig() or logging.config.dictConfig()) and then call "
            "asynclocal.logging.install(), or list ContextFilter in your handler config"
        )
    # The formatters clean; the filter only adds the fields.
    check = ContextFilter(fields=fields, placeholder=placeholder, redact=redact, escape=escape)
    flt = ContextFilter(fields=check.fields, placeholder=placeholder, redact=False, escape=False)
    if at_creation:
        capture_at_creation(flt.fields)
    for handler in target.handlers:
        for old in [f for f in handler.filters if isinstance(f, ContextFilter)]:
            handler.removeFilter(old)
        handler.addFilter(flt)
        formatter = cleaning_formatter(handler.formatter, check.redactor, check.escape)
        if formatter is not handler.formatter:
            handler.setFormatter(formatter)
    return flt


def uninstall(logger: logging.Logger | str | None = None) -> None:
    """Remove every `ContextFilter` from the handlers of `logger` (default: root). Idempotent.

    Also undoes `capture_at_creation()`.
    """
    stop_capture_at_creation()
    for handler in _target(logger).handlers:
        for old in [f for f in handler.filters if isinstance(f, ContextFilter)]:
            handler.removeFilter(old)
