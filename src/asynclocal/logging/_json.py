"""JSON lines for stdlib logging, built on python-json-logger (the 'json-logging' extra)."""

from __future__ import annotations

import logging
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
    STANDARD_FIELDS,
    captured_for,
    check_options,
)
from asynclocal.logging._format import original_of
from asynclocal.logging._redact import Redactor

__all__ = ["DEFAULT_JSON_FIELDS", "JsonFormatter"]

#: The record attributes written by default, before the request fields and extras.
DEFAULT_JSON_FIELDS: tuple[str, ...] = ("asctime", "levelname", "name", "message")

# What json.dumps writes raw that can still break a line reader or drive a
# terminal: DEL, C1 controls, U+2028/U+2029 (as JSON escapes: they parse back).
_JSON_RAW_ESCAPES: dict[int, str] = {
    c: f"\\u{c:04x}" for c in (0x7F, *range(0x80, 0xA0), 0x2028, 0x2029)
}

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
    the message and the traceback; the work is done on the formatter's own
    output dict, never on the shared record. Control characters are escaped by
    JSON itself, so a value can never break the line, and a multi-line
    message parses back with its real newlines.

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
        self._safe_keys = frozenset(k for k in _SAFE_ATTRS if k not in renamed)

    def format(self, record: logging.LogRecord) -> str:
        # A filter's cleaned copy holds text-escaped values: JSON starts from the original.
        return super().format(original_of(record))

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        # uvicorn's copy of the message with ANSI colours, for its own console only.
        log_data.pop("color_message", None)
        captured = captured_for(record, self.context_fields)
        for name in (*STANDARD_FIELDS, *self.context_fields):
            value = captured.get(name)
            log_data[self._get_rename(name)] = self.placeholder if value is None else value
        redactor = self.redactor
        if redactor is None:
            return
        safe = self._safe_keys
        for key, value in log_data.items():
            if key in safe and isinstance(value, str):
                continue
            new = redactor.redact_value(value, key)
            if new is not value:
                log_data[key] = new

    def serialize_log_record(self, log_data: dict[str, Any]) -> str:
        text = super().serialize_log_record(log_data)
        if text.isprintable():
            return text
        return text.translate(_JSON_RAW_ESCAPES)
