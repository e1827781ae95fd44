"""Read the current request's loggable fields, once, where the log call happens."""

from __future__ import annotations

import keyword
import logging
import os
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any

from asynclocal.logging._redact import Redactor, escape_control, resolve_redactor
from asynclocal.request import RequestContext, request_storage
from asynclocal.request._failed import failed_request

__all__ = [
    "CAPTURED_ATTR",
    "ID_FIELDS",
    "STANDARD_FIELDS",
    "capture",
    "captured_for",
    "check_fields",
    "check_options",
    "check_placeholder",
    "clean_values",
    "created_here",
    "values_of",
]

#: The fields every integration adds, in this order.
STANDARD_FIELDS: tuple[str, ...] = (
    "request_id",
    "trace_id",
    "span_id",
    "user_id",
    "root_request_id",
    "parent_request_id",
)

#: The `LogRecord` attribute holding the raw captured values (a dict, None for
#: "no value"). Set once, where the record is first filtered, so a record that
#: crosses a `QueueHandler` keeps the request it was logged in.
CAPTURED_ATTR = "_asynclocal_context"

#: The standard fields that are ids (validated where they enter the process):
#: formatters escape them but never look for secrets in them.
ID_FIELDS: frozenset[str] = frozenset(STANDARD_FIELDS) - {"user_id"}

_RECORD_ATTRS: frozenset[str] = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__
) | {"message", "asctime", "taskName"}


def check_fields(
    owner: str, fields: Iterable[str], *, record_attrs: bool = True
) -> tuple[str, ...]:
    """Validate app field names; return them as a tuple without duplicates.

    Raises:
        TypeError: `fields` is one str, or holds a non-str.
        ValueError: a name is not an identifier, or clashes with a standard
            field or (for stdlib logging) a `LogRecord` attribute.
    """
    if isinstance(fields, str):
        raise TypeError(
            f"{owner}(fields) must be a collection of names, not one str: use ({fields!r},)"
        )
    out: list[str] = []
    for name in fields:
        if not isinstance(name, str):
            raise TypeError(f"{owner}(fields) items must be str, got {name!r:.60}")
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"{owner}(fields): {name!r} is not a valid identifier")
        if name in STANDARD_FIELDS:
            raise ValueError(f"{owner}(fields): {name!r} is always included; leave it out")
        if record_attrs and name in _RECORD_ATTRS:
            raise ValueError(
                f"{owner}(fields): {name!r} is a LogRecord attribute; rename the app field"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def check_placeholder(owner: str, placeholder: object, *, allow_none: bool) -> None:
    """Raise TypeError unless `placeholder` is a str (or None when allowed)."""
    if isinstance(placeholder, str) or (allow_none and placeholder is None):
        return
    kind = "a str or None" if allow_none else "a str"
    raise TypeError(f"{owner}(placeholder) must be {kind}, got {placeholder!r:.60}")


def check_options(
    owner: str,
    fields: Iterable[str],
    placeholder: object,
    redact: bool | Redactor,
    *,
    allow_none: bool = True,
    record_attrs: bool = True,
) -> tuple[tuple[str, ...], Redactor | None]:
    """Validate the options every logging integration takes; return (fields, redactor).

    Raises:
        TypeError / ValueError: as `check_fields`, `check_placeholder` and
            `resolve_redactor`, checked in that order.
    """
    names = check_fields(owner, fields, record_attrs=record_attrs)
    check_placeholder(owner, placeholder, allow_none=allow_none)
    return names, resolve_redactor(redact)


def clean_values(
    values: MutableMapping[Any, Any],
    redactor: Redactor | None,
    escape: bool,
    *,
    keep_lines: frozenset[str] = frozenset(),
) -> None:
    """Mask (with `redactor`) and, with `escape`, escape every value of `values` in place.

    Values under `keep_lines` keys (tracebacks) are masked but never escaped.
    A value is replaced only when cleaning changed it.
    """
    for key, value in list(values.items()):
        if value is None or type(value) is int or type(value) is float:
            continue
        if key in ID_FIELDS:  # validated where they enter: only escaped
            new = value
        else:
            new = redactor.redact_value(value, key) if redactor is not None else value
        if escape and isinstance(new, str) and key not in keep_lines:
            new = escape_control(new)
        if new is not value:
            values[key] = new


def _loggable(value: Any) -> Any:
    # A snapshot: later changes to a mutable app value must not change this line.
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def capture(
    app_fields: tuple[str, ...], exc_info: Any = None, *, current: bool = True
) -> dict[str, Any]:
    """The current request's standard fields and `app_fields`; None where absent.

    With no current request (or `current=False`: the caller is in another
    thread than the one that logged), the request `exc_info` escaped from, as
    the middleware marked it (a server's "Exception in ASGI application"
    record, logged after the request's context was left). Otherwise every
    value is None. Secrets (`access_token`, `refresh_token`) are never read
    here. Never raises.
    """
    ctx = request_storage.get_store() if current else None
    if ctx is None and exc_info:
        ctx = failed_request(exc_info)
    if ctx is None:
        return dict.fromkeys((*STANDARD_FIELDS, *app_fields))
    return dict(zip((*STANDARD_FIELDS, *app_fields), values_of(ctx, app_fields)))


def values_of(ctx: RequestContext, app_fields: tuple[str, ...]) -> tuple[Any, ...]:
    """The values of `STANDARD_FIELDS` then `app_fields` for `ctx` (None where absent).

    Never raises.
    """
    user = ctx.user
    if user is None:
        user_id = None
    elif type(user) is dict and ("id" in user or "sub" in user):  # the common case, cheaply
        user_id = str(user["id"] if "id" in user else user["sub"])
    else:
        try:
            user_id = ctx.user_id
        except Exception:
            user_id = None
    # The causation chain (root, parent) too, so a request -> task -> sub-task ->
    # call can be reassembled from the logs of every service.
    values = (
        ctx.request_id,
        ctx.trace_id,
        ctx.span_id,
        user_id,
        ctx.root_request_id,
        ctx.parent_request_id,
    )
    if app_fields:
        values += tuple(_loggable(ctx.get(name)) for name in app_fields)
    return values


def captured_for(record: logging.LogRecord | None, fields: tuple[str, ...]) -> dict[str, Any]:
    """The request values for `record`, by name (a missing name means no value).

    The values captured where `record` was logged (`CAPTURED_ATTR`); else read
    now when there is no record or it was created in this thread and process;
    else none (another thread's context is never read for it). Never raises.
    """
    if record is not None:
        captured: dict[str, Any] | None = getattr(record, CAPTURED_ATTR, None)
        if captured is not None:
            return captured
        if not created_here(record):
            return capture(fields, record.exc_info, current=False) if record.exc_info else {}
        return capture(fields, record.exc_info)
    return capture(fields)


_process_id = [os.getpid()]  # getpid() is a system call: read it once per process
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _process_id.__setitem__(0, os.getpid()))
_get_ident = threading.get_ident


def created_here(record: logging.LogRecord) -> bool:
    """True when `record` was created in this thread and process.

    Only there may the context be read for it; elsewhere (a ``QueueListener``
    thread) the context is another request's or none, so an uncaptured value is
    left empty instead.
    """
    thread, process = record.thread, record.process
    return (thread is None or thread == _get_ident()) and (
        process is None or process == _process_id[0]
    )
