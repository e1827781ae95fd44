"""Sentry: every event and transaction carries the request's ids (the 'sentry' extra).

::

    import sentry_sdk
    from asynclocal.integrations.sentry import AsyncLocalIntegration

    sentry_sdk.init(dsn=..., integrations=[AsyncLocalIntegration()])

Each error event, message and transaction sent while a `RequestContext` is
current — in the request, in a thread or task it started, in a Celery task —
gets the tags ``request_id``, ``trace_id``, ``span_id``, ``root_request_id`` and
``parent_request_id`` (those that have a value), the whole set under
``contexts["asynclocal"]``, and ``user.id`` from ``RequestContext.user_id``
(an id the app or Sentry already set is kept). An event Sentry's own web or
Celery integration sends after the request's context is gone (the unhandled
exception it reports on the way out, the request's transaction) is matched
to its request through the Sentry transaction it belongs to.

Secrets are never added: ``access_token``/``refresh_token`` are not read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

try:
    import sentry_sdk
    from sentry_sdk.integrations import Integration
    from sentry_sdk.scope import add_global_event_processor
except ImportError as exc:
    raise ImportError(
        "asynclocal.integrations.sentry needs the 'sentry' extra: pip install 'asynclocal[sentry]'"
    ) from exc

from ..request import RequestContext, add_request_initializer, request_storage

__all__ = ["AsyncLocalIntegration", "request_context_event_processor"]

_TAGS = ("request_id", "trace_id", "span_id", "root_request_id", "parent_request_id")
# Requests by the span id of the Sentry transaction serving them; bounded, so
# transactions that never send an event (unsampled) cannot grow it.
_MAX_PENDING = 4096
_pending: OrderedDict[str, RequestContext] = OrderedDict()
_lock = threading.Lock()


def _active() -> bool:
    return sentry_sdk.get_client().get_integration(AsyncLocalIntegration) is not None


def _remember(ctx: RequestContext) -> None:
    # A request initializer: runs in every middleware once the context is set,
    # inside Sentry's own request scope when Sentry's web integration wraps the app.
    if not _active():
        return
    span = sentry_sdk.get_current_span()
    transaction = None if span is None else span.containing_transaction
    if transaction is None:
        return
    with _lock:
        _pending[transaction.span_id] = ctx
        while len(_pending) > _MAX_PENDING:
            _pending.popitem(last=False)


def _context_for(event: dict[str, Any]) -> RequestContext | None:
    ctx = request_storage.get_store()
    if ctx is not None:
        return ctx
    if event.get("type") == "transaction":
        trace = (event.get("contexts") or {}).get("trace") or {}
        span_id = trace.get("span_id")
        if isinstance(span_id, str):
            with _lock:
                return _pending.pop(span_id, None)
        return None
    span = sentry_sdk.get_current_span()
    transaction = None if span is None else span.containing_transaction
    if transaction is None:
        return None
    with _lock:
        return _pending.get(transaction.span_id)


def request_context_event_processor(
    event: dict[str, Any], hint: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Add the current request's ids and user id to a Sentry `event`; return it.

    `AsyncLocalIntegration` installs it as a global event processor; it can
    also be called from a ``before_send`` hook. Never raises: a broken context
    value leaves the event as it was.
    """
    try:
        ctx = _context_for(event)
        if ctx is None:
            return event
        values: dict[str, Any] = {name: getattr(ctx, name) for name in _TAGS}
        try:
            user_id = ctx.user_id
        except Exception:
            user_id = None
        values["user_id"] = user_id
        tags = event.setdefault("tags", {})
        if isinstance(tags, dict):
            for name in _TAGS:
                value = values[name]
                if value is not None:
                    tags.setdefault(name, value)
        contexts = event.setdefault("contexts", {})
        if isinstance(contexts, dict):
            contexts["asynclocal"] = {k: v for k, v in values.items() if v is not None}
        if user_id is not None:
            user = event.setdefault("user", {})
            if isinstance(user, dict):
                user.setdefault("id", user_id)
    except Exception:  # an error report must never fail because of us
        return event
    return event


def _global_processor(event: Any, hint: Any) -> Any:
    if not _active() or not isinstance(event, dict):
        return event
    return request_context_event_processor(event, hint)


class AsyncLocalIntegration(Integration):
    """The Sentry integration: request ids, trace ids, causation chain and user id on events.

    Pass it to ``sentry_sdk.init(integrations=[AsyncLocalIntegration()])``. It
    works with Sentry's ASGI, Starlette, FastAPI, Django, Flask, WSGI and
    Celery integrations and with the asynclocal middleware or task
    integration of each; inactive (costs one lookup) when the Sentry client
    in use was initialised without it.
    """

    identifier = "asynclocal"

    @staticmethod
    def setup_once() -> None:
        add_global_event_processor(_global_processor)
        add_request_initializer(_remember)
