"""JSON lines for stdlib logging, built on python-json-logger (the 'json-logging' extra)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

try:
    from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "asynclocal.logging.JsonFormatter needs the 'json-logging' extra "
        "(python-json-logger >= 3.1): pip install 'asynclocal[json-logging]'"
    ) from exc

from asynclocal.logging._fields import (
    _RECORD_ATTRS,
    REDACTED_BY_ATTR,
    STANDARD_FIELDS,
    UNESCAPED_ATTR,
    captured_for,
    check_options,
)
from asynclocal.logging._redact import Redactor

__all__ = ["DEFAULT_JSON_FIELDS", "JsonFormatter"]

#: The record attributes written by default, before the request fields and extras.
DEFAULT_JSON_FIELDS: tuple[str, ...] = ("asctime", "levelname", "name", "message")


# Characters escape_control() escapes that JSON leaves raw (with and without ensure_ascii).
_RAW_IN_ASCII_JSON = re.compile("\x7f")
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")

# Rendered by this formatter itself: tracebacks.
_RENDERED_HERE = frozenset({"exc_info", "stack_info", "exc_text"})
# Rendered from the record's own bookkeeping, never from app data.
_SAFE_ATTRS = (_RECORD_ATTRS - {"msg", "args", "message"} - _RENDERED_HERE) | set(STANDARD_FIELDS)


class JsonFormatter(_BaseJsonFormatter):
    """`pythonjsonlogger.json.JsonFormatter` plus the request fields and redaction.

    Each line is one JSON object with the format's fields (`fmt`: a ``%``
    format string or a list of names; default and None: ``asctime``,
    ``levelname``, ``name``, ``message``), ``request_id``,
    ``trace_id``, ``span_id``, ``user_id``, the app `fields` and the record's
    ``extra`` values. Request fields are the ones captured by a `ContextFilter`
    upstream (so a ``QueueListener`` thread writes the request the record was
    logged in); without a filter they are read where the record is formatted,
    if that is the thread that created it (else they are empty).
    Outside a request they are `placeholder` (default JSON ``null``).

    Unless `redact=False`, every value of the finished object goes through the
    `Redactor` (secret keys masked whole, secrets in strings masked), including
    the message and the traceback. Control characters are escaped by JSON
    itself, so a value can never break the line: text a `ContextFilter` escaped
    for text handlers is written as logged (a newline parses back as a
    newline), except a value holding a character this encoder writes raw
    (DEL; with ``json_ensure_ascii=False`` also C1 controls, U+2028/U+2029).

    All other arguments are python-json-logger's (``rename_fields``,
    ``static_fields``, ``timestamp``, ``json_ensure_ascii``...).

    Raises:
        TypeError / ValueError: invalid `fields`, `placeholder` or `redact`.
    """

    def __init__(
        self,
        fmt: str | Sequence[str] | None = DEFAULT_JSON_FIELDS,
        *args: Any,
        fields: Iterable[str] = (),
        placeholder: str | None = None,
        redact: bool | Redactor = True,
        **kwargs: Any,
    ) -> None:
        if fmt is None:  # dictConfig's "class" form passes None when "format" is absent
            fmt = DEFAULT_JSON_FIELDS
        elif isinstance(fmt, list):  # dictConfig passes YAML/JSON lists
            fmt = tuple(fmt)
        super().__init__(fmt, *args, **kwargs)
        self.context_fields, self.redactor = check_options(
            "JsonFormatter", fields, placeholder, redact
        )
        self.placeholder = placeholder
        renamed = set(self.rename_fields.values())
        self._rendered_keys = frozenset(self._get_rename(k) for k in _RENDERED_HERE)
        self._safe_keys = frozenset(k for k in _SAFE_ATTRS if k not in renamed)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        unescaped: dict[str, Any] | None = record.__dict__.get(UNESCAPED_ATTR)
        if unescaped:
            self._unescape(log_data, record, unescaped)
        captured = captured_for(record, self.context_fields)
        for name in (*STANDARD_FIELDS, *self.context_fields):
            value = captured.get(name)
            log_data[self._get_rename(name)] = self.placeholder if value is None else value
        if self.redactor is None:
            return
        redactor: Redactor = self.redactor
        # When a ContextFilter already masked the message, extras and fields with
        # this redactor, only the tracebacks this formatter renders are left.
        if record.__dict__.get(REDACTED_BY_ATTR) is redactor:
            keys = [k for k in self._rendered_keys if k in log_data]
        else:
            keys = list(log_data)
        for key in keys:
            value = log_data[key]
            if key in self._safe_keys and isinstance(value, str):
                continue
            new = redactor.redact_value(value, key)
            if new is not value:
                log_data[key] = new

    def _unescape(
        self, log_data: dict[str, Any], record: logging.LogRecord, unescaped: dict[str, Any]
    ) -> None:
        # A ContextFilter escaped these values for text output; JSON escapes the
        # original once. Kept escaped: a value holding a character this encoder
        # would write raw (DEL, and with ensure_ascii=False C1 and U+2028/9).
        unsafe = _RAW_IN_ASCII_JSON if self.json_ensure_ascii else _RAW_IN_JSON
        attrs = record.__dict__
        for name, original in unescaped.items():
            key = self._get_rename(name)
            # Only where the output still holds the escaped value itself.
            if key not in log_data or log_data[key] is not attrs.get(name):
                continue
            if not (isinstance(original, str) and unsafe.search(original)):
                log_data[key] = original
