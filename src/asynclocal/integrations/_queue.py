"""What a task message carries, and how a worker runs a task in it (shared by Celery and RQ).

A message carries one JSON text under the key `HEADER`::

    {"v": 1,
     "carrier": {"x-request-id": ..., "x-root-request-id": ..., "traceparent": ...},
     "stores": {"<cross-process storage name>": <JSON value>, ...},
     "fields": {"<request app field>": <JSON value>, ...}}

`carrier` is what `asynclocal.propagation.inject` writes; `stores` are the
stores of the storages created with ``cross_process=True`` that are visible
when the task is published; `fields` are the request's app fields the
integration was told to carry. Everything is encoded with `json` when the task
is published, so a value JSON cannot encode fails right there, naming the
storage or field, before anything is sent.

In the worker, `activate` gives the task a clean context: every storage of the
process shows its default except the cross-process storages the message
carried, and the request storage holds a new `RequestContext` for this hop,
chained to the publisher (root id kept, parent id = the publisher's request
id, same trace with a new span).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from .._storage import _MISSING, cross_process_storages, find_cross_process_storage, live_storages
from ..errors import ContextNotSerializableError
from ..propagation import inject
from ..request import RequestContext, RequestContextFactory, request_storage

__all__ = [
    "HEADER",
    "ContextNotSerializableError",
    "MessageContext",
    "activate",
    "capture",
    "check_fields",
    "decode",
    "restore",
]

#: The message header (Celery) / job meta key (RQ) holding the encoded context.
HEADER = "asynclocal"
_VERSION = 1
_MAX_FIELDS = 64

logger = logging.getLogger("asynclocal.integrations")


@dataclass(frozen=True)
class MessageContext:
    """A decoded message context: what the publisher's context was."""

    carrier: Mapping[str, str] = field(default_factory=dict)
    stores: Mapping[str, Any] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict)


def check_fields(fields: Iterable[str], what: str) -> tuple[str, ...]:
    """Validate the names of the app fields an integration carries.

    Raises:
        TypeError: `fields` is a single string or holds a non-string.
        ValueError: a name is empty or there are too many.
    """
    if isinstance(fields, str):
        raise TypeError(f"{what}(fields=...) expects a list of field names, not one string")
    names = tuple(fields)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{what}(fields=...) holds {name!r}; field names are non-empty str")
    if len(names) > _MAX_FIELDS:
        raise ValueError(f"{what}(fields=...) names {len(names)} fields; at most {_MAX_FIELDS}")
    return names


def _encode(value: Any, what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ContextNotSerializableError(
            f"{what} ({type(value).__name__}) cannot be sent in a task message: {exc}. "
            "Task queues carry values as JSON: keep only str, int, float, bool, None, "
            "lists and dicts with str keys in it, or stop carrying it"
        ) from exc


def capture(fields: Iterable[str] = ()) -> str:
    """Encode the current context for a task message (see the module docstring).

    Raises:
        ContextNotSerializableError: a cross-process store or a carried field is not
            JSON-serialisable; the message names it.
    """
    carrier: dict[str, str] = {}
    inject(carrier)
    parts = ['{"v":', str(_VERSION), ',"carrier":', json.dumps(carrier, separators=(",", ":"))]
    stores: list[str] = []
    for storage in cross_process_storages():
        store = storage.context_var.get(_MISSING)
        if store is _MISSING or store is storage.default:
            continue
        encoded = _encode(store, f"the store of cross-process AsyncLocalStorage {storage.name!r}")
        stores.append(f"{json.dumps(storage.name)}:{encoded}")
    if stores:
        parts += [',"stores":{', ",".join(stores), "}"]
    ctx = request_storage.get_store()
    if ctx is not None and fields:
        values = [
            f"{json.dumps(name)}:{_encode(ctx.get(name), f'the request app field {name!r}')}"
            for name in fields
            if name in ctx
        ]
        if values:
            parts += [',"fields":{', ",".join(values), "}"]
    parts.append("}")
    return "".join(parts)


class _Malformed(ValueError):
    """A decoded message context of the wrong shape (the message names no input)."""


def decode(raw: object) -> MessageContext | None:
    """Decode what `capture` wrote. Never raises: junk yields None and a warning.

    The warning says what was wrong in fixed words (the JSON error kind, or which
    part had the wrong shape); it never repeats the message text, which comes
    from whoever can publish to the queue.
    """
    if raw is None:
        return None
    try:
        data = json.loads(raw) if isinstance(raw, (str, bytes, bytearray)) else raw
        if not isinstance(data, dict) or data.get("v") != _VERSION:
            raise _Malformed(f"not an asynclocal v{_VERSION} context")
        carrier = data.get("carrier") or {}
        stores = data.get("stores") or {}
        fields = data.get("fields") or {}
        if not all(isinstance(x, dict) for x in (carrier, stores, fields)):
            raise _Malformed("carrier, stores and fields must be objects")
        carrier = {k: v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)}
        stores = {k: v for k, v in stores.items() if isinstance(k, str)}
        fields = {k: v for k, v in fields.items() if isinstance(k, str)}
    except Exception as exc:
        # json's messages carry a position only; anything else is named by its type.
        if isinstance(exc, _Malformed):
            reason = str(exc)
        elif isinstance(exc, json.JSONDecodeError):
            reason = f"invalid JSON: {exc.msg} at character {exc.pos}"
        else:
            reason = type(exc).__name__
        logger.warning(
            "ignoring a malformed asynclocal task context (%s, %d characters; not shown)",
            reason,
            len(raw) if isinstance(raw, (str, bytes, bytearray)) else 0,
        )
        return None
    return MessageContext(carrier=carrier, stores=stores, fields=fields)


def restore(
    message: MessageContext | None,
    *,
    task_id: str,
    task_name: str,
    set_var: Callable[[ContextVar[Any], Any], None],
    method: str = "TASK",
) -> RequestContext:
    """Make the current context the task's clean context; return its `RequestContext`.

    Every live storage is set to its default, then the cross-process stores in
    `message` are set, then the request storage gets a new context for this hop:
    request id = `task_id` (or the caller's, with ``reuse_request_id``), method
    `method` (``"TASK"``; message consumers say which transport), path and
    route = `task_name`. `set_var(var, value)` does the
    setting, so the caller chooses between plain sets and token bookkeeping.
    A store for a storage this process does not have is skipped with a warning
    (that counts them; it never repeats names taken from the message).
    """
    for storage in live_storages():
        set_var(storage.context_var, storage.default)
    if message is not None:
        unknown = 0
        for name, value in message.stores.items():
            target = find_cross_process_storage(name)
            if target is None:
                unknown += 1
                continue
            set_var(target.context_var, value)
        if unknown:
            # The names come from the message, so they are not repeated here.
            logger.warning(
                "task %s carries %d store(s) for cross-process AsyncLocalStorages this worker "
                "does not have (names not shown: they come from the message); create each "
                "storage at import time in a module the worker imports (the task module is a "
                "good place)",
                task_id,
                unknown,
            )
    ctx = _WORKER_FACTORY.from_headers(
        _text_carrier(message.carrier if message is not None else {}),
        method=method,
        path=task_name,
        own_id=task_id,
    )
    ctx.route = task_name
    if message is not None:
        for key, value in message.fields.items():
            ctx.set(key, value)
    try:
        _WORKER_FACTORY.start_sync(ctx)
    except Exception:  # an initializer must not stop the task; a middleware would 500
        logger.exception("a request initializer failed for task %s", task_id)
    set_var(request_storage.context_var, ctx)
    return ctx


#: The worker side of a task builds its context as a web request does: the task
#: id is the fresh id, the carrier the headers (the broker is trusted: no peer).
_WORKER_FACTORY = RequestContextFactory()


def _text_carrier(carrier: Any) -> dict[str, str]:
    if not isinstance(carrier, Mapping):
        return {}
    return {k: v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)}


class Activation:
    """Tokens of one `activate` call, undone by `deactivate` in reverse order."""

    __slots__ = ("outer", "raw", "task_id", "tokens")

    def __init__(self, task_id: str, raw: object) -> None:
        self.task_id = task_id
        self.raw = raw
        self.outer: Activation | None = None  # the activation this one runs inside, if any
        self.tokens: list[tuple[ContextVar[Any], Token[Any], Any]] = []

    def set_var(self, var: ContextVar[Any], value: Any) -> None:
        self.tokens.append((var, var.set(value), value))

    def undo(self) -> None:
        for var, token, value in reversed(self.tokens):
            try:
                var.reset(token)
            except ValueError:  # set in another context: put back the old value by hand
                if var.get(_MISSING) is value and token.old_value is not Token.MISSING:
                    var.set(token.old_value)
        self.tokens.clear()


def activate(raw: object, *, task_id: str, task_name: str) -> Activation:
    """`restore` the context in `raw` into the current context, recording tokens to undo."""
    activation = Activation(task_id, raw)
    try:
        restore(decode(raw), task_id=task_id, task_name=task_name, set_var=activation.set_var)
    except Exception:  # never run a task in a half-restored context
        logger.exception("could not restore the context of task %s; running it without", task_id)
        activation.undo()
        restore(None, task_id=task_id, task_name=task_name, set_var=activation.set_var)
    return activation
