"""Per-request structured logging: every line carries its own request's id, secrets never.

* `ContextFilter` (stdlib ``logging.Filter``) adds ``request_id``, ``trace_id``,
  ``span_id``, ``user_id``, the causation chain and chosen app fields to every
  record, with a placeholder outside a request; it never changes what a record
  already holds. `install()` attaches it to the root logger's handlers, gives
  them masking formatters and makes records capture the request when created
  (`capture_at_creation()`).
* `Formatter` (text) and `JsonFormatter` (needs the 'json-logging' extra:
  JSON lines built on python-json-logger) mask secrets, and escape control
  characters, on their own copy of each record.
* `asynclocal.logging.structlog.add_request_context` (structlog processor) and
  `asynclocal.logging.loguru.patcher` (loguru patcher).
* `logging_config()`: one ``dictConfig`` for the app and its servers (uvicorn,
  gunicorn, hypercorn, Celery, Django), every line with the request's ids.
* `AccessLog`: the per-request access line the web integrations write with
  ``access_log=True``.
* `Redactor` decides what a secret is; `escape_control` keeps one call on one line.

Importing this package needs only the standard library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asynclocal.logging._access import AccessLog, AccessMeter
from asynclocal.logging._factory import (
    capture_at_creation,
    capturing_at_creation,
    stop_capture_at_creation,
)
from asynclocal.logging._fields import STANDARD_FIELDS
from asynclocal.logging._filter import ContextFilter, install, uninstall
from asynclocal.logging._format import Formatter
from asynclocal.logging._redact import (
    DEFAULT_SECRET_KEY_PATTERN,
    DEFAULT_SECRET_KEYS,
    REDACTED,
    Redactor,
    default_redactor,
    escape_control,
)
from asynclocal.logging._servers import logging_config

if TYPE_CHECKING:
    from asynclocal.logging._json import JsonFormatter as JsonFormatter

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "DEFAULT_SECRET_KEY_PATTERN",
    "REDACTED",
    "STANDARD_FIELDS",
    "AccessLog",
    "AccessMeter",
    "ContextFilter",
    "Formatter",
    "Redactor",
    "capture_at_creation",
    "capturing_at_creation",
    "default_redactor",
    "escape_control",
    "install",
    "logging_config",
    "stop_capture_at_creation",
    "uninstall",
]


def __getattr__(name: str) -> Any:
    # JsonFormatter is imported on first use (and left out of __all__, so a star
    # import works without the extra): the package itself stays stdlib-only, and
    # a missing extra raises ImportError naming it.
    if name == "JsonFormatter":
        from asynclocal.logging._json import JsonFormatter

        return JsonFormatter
    raise AttributeError(f"module 'asynclocal.logging' has no attribute {name!r}")
