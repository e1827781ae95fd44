"""structlog processor: the request's fields on every event, secrets masked.

Needs the 'structlog' extra. Put `add_request_context` last before the
renderer, so it also masks what earlier processors added::

    structlog.configure(processors=[
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.format_exc_info,
        asynclocal.logging.structlog.add_request_context,
        structlog.processors.JSONRenderer(),
    ])
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

try:
    import structlog as _structlog  # noqa: F401  (the extra must be installed)
except ImportError as exc:
    raise ImportError(
        "asynclocal.logging.structlog needs the 'structlog' extra: "
        "pip install 'asynclocal[structlog]'"
    ) from exc

from asynclocal.logging._fields import (
    STANDARD_FIELDS,
    captured_for,
    check_options,
    clean_values,
)
from asynclocal.logging._redact import Redactor

__all__ = ["RequestContextProcessor", "add_request_context"]

# Multi-line by nature: masked, never escaped.
_MULTILINE_KEYS = frozenset({"exception", "stack", "exc_info", "stack_info"})


class RequestContextProcessor:
    """A structlog processor adding the request fields and app fields to each event.

    The fields are ``request_id``, ``trace_id``, ``span_id``, ``user_id`` and `fields`.

    Values are read where the event is logged (the calling task or thread). As
    a ``foreign_pre_chain`` processor of ``structlog.stdlib.ProcessorFormatter``
    it uses the values a stdlib record captured where it was logged
    (`capture_at_creation()` or a `ContextFilter` upstream).
    Keys already bound on the logger win. Outside a request the fields are
    `placeholder` (default None, rendered as JSON ``null``).

    Unless `redact=False`, the event dict is then masked with the `Redactor`
    (secret keys whole, secrets inside strings, nested dicts and lists), and
    with `escape=True` control characters in string values are written as
    escapes (tracebacks under ``exception``/``stack`` keep their lines). The
    request's `access_token`/`refresh_token` are never added.

    Raises:
        TypeError / ValueError: invalid `fields`, `placeholder` or `redact`.
    """

    __slots__ = ("escape", "fields", "placeholder", "redactor")

    def __init__(
        self,
        *,
        fields: Iterable[str] = (),
        placeholder: str | None = None,
        redact: bool | Redactor = True,
        escape: bool = True,
    ) -> None:
        self.fields, self.redactor = check_options(
            "RequestContextProcessor", fields, placeholder, redact, record_attrs=False
        )
        self.placeholder = placeholder
        self.escape = bool(escape)

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        # A stdlib record (set by structlog.stdlib.ProcessorFormatter), maybe formatted
        # later in a QueueListener thread: use what was captured where it was logged.
        captured = captured_for(event_dict.get("_record"), self.fields)
        for name in (*STANDARD_FIELDS, *self.fields):
            if name not in event_dict:
                value = captured.get(name)
                event_dict[name] = self.placeholder if value is None else value
        redactor = self.redactor
        if redactor is None and not self.escape:
            return event_dict
        clean_values(event_dict, redactor, self.escape, keep_lines=_MULTILINE_KEYS)
        return event_dict


#: The default processor: standard fields, placeholder None, redaction and escaping on.
add_request_context = RequestContextProcessor()
