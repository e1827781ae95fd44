"""loguru patcher: the request's fields in ``record["extra"]``, secrets masked.

Needs the 'loguru' extra::

    from loguru import logger
    from asynclocal.logging.loguru import patcher

    logger.configure(patcher=patcher)
    logger.add(sys.stderr, format="{time} {level} [{extra[request_id]}] {message}")
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

try:
    import loguru as _loguru  # noqa: F401  (the extra must be installed)
except ImportError as exc:
    raise ImportError(
        "asynclocal.logging.loguru needs the 'loguru' extra: pip install 'asynclocal[loguru]'"
    ) from exc

from asynclocal.logging._fields import capture, check_options, clean_values
from asynclocal.logging._redact import Redactor, escape_control

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["RequestContextPatcher", "patcher"]


class RequestContextPatcher:
    """A loguru patcher putting the request fields and app fields in ``record["extra"]``.

    The fields are ``request_id``, ``trace_id``, ``span_id``, ``user_id`` and `fields`.

    Use it with ``logger.configure(patcher=...)`` (every logger) or
    ``logger.patch(...)`` (one logger). Patchers run in the calling task or
    thread, before ``enqueue=True`` hands the record to loguru's worker, so the
    values are always the logging request's. Values already bound with
    ``logger.bind()`` / ``contextualize()`` win. Outside a request the fields
    are `placeholder` (default ``"-"``), so ``{extra[request_id]}`` in a format
    never raises.

    Unless `redact=False`, the message (already formatted with its args) and
    the ``extra`` values are masked with the `Redactor`; with `escape=True`
    control characters there are written as escapes. loguru renders tracebacks
    itself after the patcher: keep ``diagnose=False`` in production so variable
    values (tokens among them) are not printed in them.

    Raises:
        TypeError / ValueError: invalid `fields`, `placeholder` or `redact`.
    """

    __slots__ = ("escape", "fields", "placeholder", "redactor")

    def __init__(
        self,
        *,
        fields: Iterable[str] = (),
        placeholder: str | None = "-",
        redact: bool | Redactor = True,
        escape: bool = True,
    ) -> None:
        self.fields, self.redactor = check_options(
            "RequestContextPatcher", fields, placeholder, redact, record_attrs=False
        )
        self.placeholder = placeholder
        self.escape = bool(escape)

    def __call__(self, record: Record) -> None:
        extra: dict[Any, Any] = record["extra"]
        for name, value in capture(self.fields, record["exception"]).items():
            if name not in extra:
                extra[name] = self.placeholder if value is None else value
        redactor = self.redactor
        message = record["message"]
        if redactor is not None:
            message = redactor.redact_text(message)
        if self.escape:
            message = escape_control(message)
        record["message"] = message
        if redactor is None and not self.escape:
            return
        clean_values(extra, redactor, self.escape)


#: The default patcher: standard fields, placeholder ``"-"``, redaction and escaping on.
patcher = RequestContextPatcher()
