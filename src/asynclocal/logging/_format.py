"""Masking and escaping for stdlib text output, done on the formatter's own copy.

A filter only adds the request's fields to a `LogRecord`; what each handler
writes is decided by its formatter. `Formatter` masks secrets and escapes
control characters in what it formats, and never changes the shared record, so
a Sentry handler or a file handler next to it sees the record as it was logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

from asynclocal.logging._fields import _RECORD_ATTRS, ID_FIELDS
from asynclocal.logging._redact import Redactor, escape_control, resolve_redactor

__all__ = ["SOURCE_ATTR", "Formatter", "cleaned_record", "cleaning_formatter", "original_of"]

#: On a cleaned copy a `ContextFilter` hands its handler (Python 3.12+): ``(original, msg)``,
#: the record it was made from and the copy's own message. This package's formatters clean
#: that original themselves, in their own way (JSON escapes by itself; text escapes control
#: characters), so nothing is cleaned twice.
SOURCE_ATTR = "_asynclocal_source"


def original_of(record: logging.LogRecord) -> logging.LogRecord:
    """The record a filter's cleaned copy was made from, or `record` itself.

    Only while the copy is unchanged: a copy that was prepared further (a
    ``QueueHandler`` puts its formatted, masked message in ``msg``) is used as
    it is, so a listener thread never formats the unmasked original.
    """
    source = record.__dict__.get(SOURCE_ATTR)
    if type(source) is tuple and len(source) == 2 and source[1] is record.msg:
        original = source[0]
        if isinstance(original, logging.LogRecord):
            return original
    return record


_FIELD_RES: dict[type[logging.PercentStyle], re.Pattern[str]] = {
    logging.PercentStyle: re.compile(r"%\((\w+)\)"),
    logging.StrFormatStyle: re.compile(r"\{(\w+)"),
    logging.StringTemplateStyle: re.compile(r"\$\{?(\w+)"),
}
_STYLE_CHARS: dict[type[logging.PercentStyle], Literal["%", "{", "$"]] = {
    logging.PercentStyle: "%",
    logging.StrFormatStyle: "{",
    logging.StringTemplateStyle: "$",
}
# Never app data: the record's own bookkeeping (the message and the traceback
# are handled apart).
_NOT_APP_DATA = _RECORD_ATTRS | {"msg", "args", "message", "asctime", "exc_text", "stack_info"}
_exception_formatter = logging.Formatter()


def _clean_text(text: str, redactor: Redactor | None, escape: bool) -> str:
    if redactor is not None:
        text = redactor.redact_text(text)
    if escape and not text.isprintable():
        text = escape_control(text)
    return text


def _clean_value(value: Any, name: str, redactor: Redactor | None, escape: bool) -> Any:
    if name in ID_FIELDS:  # ids: validated where they enter, only ever escaped
        if escape and type(value) is str and not value.isprintable():
            return escape_control(value)
        return value
    new = redactor.redact_value(value, name) if redactor is not None else value
    if escape and isinstance(new, str) and not new.isprintable():
        new = escape_control(new)
    return new


def cleaned_record(
    record: logging.LogRecord,
    redactor: Redactor | None,
    escape: bool,
    fields: tuple[str, ...] | None,
    *,
    formatter: logging.Formatter = _exception_formatter,
    keep_exc_info: bool = True,
) -> tuple[logging.LogRecord, str | None]:
    """`record` itself when nothing in it needs masking or escaping, else a cleaned copy.

    Returns the record to format and its rendered, cleaned message (None when
    rendering raised: the formatter then reports the bad call as the stdlib
    does). `fields` names the extra attributes that are written (None: all of
    them). The traceback is rendered with `formatter` and masked, never
    escaped. The shared `record` is never changed. Never raises on its own.
    """
    attrs = record.__dict__
    changes: dict[str, Any] = {}
    msg = record.msg
    message: str | None
    if isinstance(msg, Mapping) and not record.args:
        if redactor is not None:
            changes["msg"] = redactor.redact_mapping(msg)
        message = None
    else:
        try:
            rendered = record.getMessage()
        except Exception:
            rendered = None
        message = rendered
        if rendered is not None:
            cleaned = _clean_text(rendered, redactor, escape)
            if cleaned is not rendered:
                changes["msg"] = message = cleaned
                changes["args"] = None
    names: Any = fields if fields is not None else (attrs.keys() - _RECORD_ATTRS)
    for name in names:
        value = attrs.get(name)
        if value is None or type(value) is int or name[:1] == "_":
            continue
        if name in ID_FIELDS:  # ids: validated where they enter, only ever escaped
            if escape and type(value) is str and not value.isprintable():
                changes[name] = escape_control(value)
            continue
        new = _clean_value(value, name, redactor, escape)
        if new is not value:
            changes[name] = new
    exc_text = record.exc_text
    if record.exc_info or exc_text or record.stack_info:
        if record.exc_info and not exc_text:
            exc_text = formatter.formatException(record.exc_info)
        if exc_text and redactor is not None:
            exc_text = redactor.redact_text(exc_text)
        changes["exc_text"] = exc_text
        if not keep_exc_info:
            changes["exc_info"] = None
        if record.stack_info and redactor is not None:
            changes["stack_info"] = redactor.redact_text(record.stack_info)
    if not changes:
        return record, message
    copy = logging.LogRecord.__new__(type(record))
    copy.__dict__.update(attrs)
    copy.__dict__.update(changes)
    return copy, message


class Formatter(logging.Formatter):
    """`logging.Formatter` that masks secrets and escapes control characters in its output.

    Formats like the stdlib formatter (same arguments), but first masks
    secrets (see `Redactor`) in the message rendered with its args, in the
    extra attributes the format names (``%(user_id)s``, ``%(payload)s``), in
    the traceback and in the stack; with `escape` (default) CR, LF, ESC and
    other control characters in the message and those attributes are written
    as escapes, so one call is one line (tracebacks keep their lines). It works
    on its own copy of a record that needs it: the shared `LogRecord` other
    handlers see is never changed. A line with nothing secret-looking and
    nothing to escape is formatted as the stdlib formats it.

    Args:
        fmt, datefmt, style, validate, defaults: as for `logging.Formatter`.
        redact: True (default redactor), False, or a `Redactor`.
        escape: escape control characters.

    Raises:
        TypeError: invalid `redact`. ValueError: as `logging.Formatter`.
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        validate: bool = True,
        *,
        defaults: Mapping[str, Any] | None = None,
        redact: bool | Redactor = True,
        escape: bool = True,
    ) -> None:
        super().__init__(fmt, datefmt, style, validate, defaults=defaults)
        self.redactor = resolve_redactor(redact)
        self.escape = bool(escape)
        style_obj = self._style
        found = _FIELD_RES.get(type(style_obj), _FIELD_RES[logging.PercentStyle])
        fmt_text = style_obj._fmt or ""
        self._fields = tuple(
            dict.fromkeys(n for n in found.findall(fmt_text) if n not in _NOT_APP_DATA)
        )
        self._uses_time = self.usesTime()

    def format(self, record: logging.LogRecord) -> str:
        record = original_of(record)
        redactor, escape = self.redactor, self.escape
        if redactor is None and not escape:
            return super().format(record)
        if (
            not (record.exc_info or record.exc_text or record.stack_info)
            and type(record.msg) is str
        ):
            # The common line: nothing to copy when nothing needs cleaning.
            try:
                message = record.getMessage()
            except Exception:
                return super().format(record)  # the stdlib reports the bad call
            clean = redactor.redact_text(message) if redactor is not None else message
            if escape and not clean.isprintable():
                clean = escape_control(clean)
            if clean is message and self._fields_are_clean(record.__dict__):
                record.message = message
                if self._uses_time:
                    record.asctime = self.formatTime(record, self.datefmt)
                return self.formatMessage(record)
        rec, rendered = cleaned_record(record, redactor, escape, self._fields, formatter=self)
        if rendered is None:  # a bad call or a dict message: the stdlib path reports it
            return super().format(rec)
        rec.message = rendered
        if self._uses_time:
            rec.asctime = self.formatTime(rec, self.datefmt)
        s = self.formatMessage(rec)
        if rec.exc_text:
            if s[-1:] != "\n":
                s = s + "\n"
            s = s + rec.exc_text
        if rec.stack_info:
            if s[-1:] != "\n":
                s = s + "\n"
            s = s + self.formatStack(rec.stack_info)
        return s

    def _fields_are_clean(self, attrs: dict[str, Any]) -> bool:
        redactor, escape = self.redactor, self.escape
        for name in self._fields:
            value = attrs.get(name)
            if value is None or type(value) is int:
                continue
            if type(value) is str:
                if escape and not value.isprintable():
                    return False
                if name in ID_FIELDS or redactor is None:
                    continue
                if redactor.is_secret_key(name) or redactor.redact_text(value) is not value:
                    return False
            elif _clean_value(value, name, redactor, escape) is not value:
                return False
        return True


class _CleaningFormatter(logging.Formatter):
    """Wraps any formatter: it formats a cleaned copy of each record that needs one."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor | None, escape: bool) -> None:
        super().__init__()
        self.inner = inner
        self.redactor = redactor
        self.escape = escape

    def format(self, record: logging.LogRecord) -> str:
        rec, _ = cleaned_record(
            original_of(record),
            self.redactor,
            self.escape,
            None,
            formatter=self.inner,
            keep_exc_info=False,
        )
        return self.inner.format(rec)


def cleaning_formatter(
    current: logging.Formatter | None, redactor: Redactor | None, escape: bool
) -> logging.Formatter | None:
    """The formatter a handler gets from `install()`: `current`, made to mask and escape.

    A formatter of this package is kept (it cleans by itself); a plain
    `logging.Formatter` (or none) becomes a `Formatter` with the same format;
    any other is wrapped so it formats a cleaned copy (without escaping when it
    writes JSON, which escapes by itself).
    """
    if isinstance(current, _CleaningFormatter):
        current = current.inner
    if redactor is None and not escape:
        return current
    if current is None:
        return Formatter(redact=redactor or False, escape=escape)
    if isinstance(current, Formatter) or type(current).__module__.startswith("asynclocal."):
        return current
    if type(current) is logging.Formatter:
        style = current._style
        return Formatter(
            style._fmt,
            current.datefmt,
            _STYLE_CHARS.get(type(style), "%"),
            defaults=getattr(style, "_defaults", None),
            redact=redactor or False,
            escape=escape,
        )
    kind = f"{type(current).__module__}.{type(current).__name__}".lower()
    return _CleaningFormatter(current, redactor, escape and "json" not in kind)
