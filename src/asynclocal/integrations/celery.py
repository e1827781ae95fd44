"""Celery: the publisher's context travels with each task and is restored in the worker.

One call, in the module that creates the app (both the publisher and the worker
import it)::

    from asynclocal.integrations.celery import install

    app = Celery("proj", broker=...)
    install(app)                      # or install(app, fields=["tenant"])

Guarantees, in a worker (any pool; tested with prefork and threads) and in eager
mode (``task_always_eager`` or ``task.apply()``) alike:

* When a task is published, the current request's ids and trace
  (`asynclocal.propagation.inject`), the stores of every storage created with
  ``cross_process=True`` and the app fields named in ``fields`` are encoded as
  JSON into the message header ``asynclocal``. A value JSON cannot encode
  raises `ContextNotSerializableError`, naming the storage or field, from
  ``delay``/``apply_async``/``send_task``: nothing is sent.
* The task runs in a clean context for its whole run, from ``task_prerun`` to
  ``task_postrun`` (so also its ``on_success`` handlers, result storage and the
  publishing of the next task of a chain): every storage shows its default
  except the cross-process stores the message carried (as decoded JSON: a
  copy, tuples become lists), and `current_request()` is a new
  `RequestContext` for the task: ``request_id`` = the Celery task id,
  ``root_request_id`` = the publishing request's root, ``parent_request_id`` =
  the publisher's request id, the same trace id with a new span id,
  ``method="TASK"``, ``path``/``route`` = the task name. A task published
  outside any request gets a root context of its own.
* Afterwards everything is put back as it was, so a worker (process or thread)
  never runs a task with a previous task's stores, and an eager caller gets its
  own context back.
* A retry is published with the exact context the task received, so every
  attempt sees the same request ids and stores. A task published from inside a
  task (a chain's next step, a link, a sub-task) continues the causation chain:
  same root id, parent id = the publishing task's id. A chain's next step is
  published after the task returned, from its context as the task left it.
  Eager chains, which Celery runs step by step in the caller, chain the same way.

A malformed header, or a store for a storage the worker does not have, is
logged on the ``asynclocal.integrations`` logger and skipped; the task runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

try:
    from celery import Celery, signals
    from celery.app.task import Task
    from celery.canvas import _chain
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "asynclocal.integrations.celery needs the 'celery' extra: pip install 'asynclocal[celery]'"
    ) from exc

from .._patching import Patches
from ._queue import HEADER, Activation, ContextNotSerializableError, activate, capture, check_fields

__all__ = ["HEADER", "ContextNotSerializableError", "install", "installed", "uninstall"]

_STATE_ATTR = "_asynclocal_celery"
_DISPATCH_UID = "asynclocal.integrations.celery"

#: The activation of the task running in this context (None outside tasks).
_current: ContextVar[Activation | None] = ContextVar("asynclocal.celery.task", default=None)

_lock = threading.Lock()
_installed_apps = 0
_orig_apply: Callable[..., Any] = Task.apply
_orig_chain_apply: Callable[..., Any] = _chain.apply
# The process-wide part (eager ``Task.apply`` and chains), applied while any app is installed.
_patches = Patches(lambda: [(Task, "apply", _apply), (_chain, "apply", _chain_apply)])


class _EagerChain:
    """An eager chain being applied: each step is published "by" the previous step."""

    __slots__ = ("caller", "step_context")

    def __init__(self, caller: Activation | None) -> None:
        self.caller = caller  # the task (or None) that applies the chain
        self.step_context: str | None = None  # captured at the end of the previous step


#: The eager chain applied in this context, if any.
_eager_chain: ContextVar[_EagerChain | None] = ContextVar("asynclocal.celery.chain", default=None)


@dataclass
class _AppState:
    fields: tuple[str, ...]
    send_task: Callable[..., Any]


def _state_of(app: object) -> _AppState | None:
    state = getattr(app, "__dict__", {}).get(_STATE_ATTR)
    return state if isinstance(state, _AppState) else None


def _with_context(headers: Mapping[str, Any] | None, task_id: object, state: _AppState) -> Any:
    """`headers` plus the encoded context of the task about to be published."""
    result = dict(headers) if headers else {}
    current = _current.get()
    chain = _eager_chain.get()
    if current is not None and task_id is not None and task_id == current.task_id:
        # A retry (or replacement) of the running task: the context it received, again.
        if current.raw is None:
            result.pop(HEADER, None)
        else:
            result[HEADER] = current.raw
    elif chain is not None and chain.caller is current and chain.step_context is not None:
        # The next step of an eager chain: as a worker would, from the previous step.
        result[HEADER] = chain.step_context
    else:
        result[HEADER] = capture(state.fields)
    return result


def _chain_apply(self: Any, *args: Any, **options: Any) -> Any:
    # Eager chains run step after step in the caller; make each step continue the
    # previous one, as the worker does when it publishes the next step.
    token = _eager_chain.set(_EagerChain(_current.get()))
    try:
        return _orig_chain_apply(self, *args, **options)
    finally:
        _eager_chain.reset(token)


def _apply(self: Any, *args: Any, **options: Any) -> Any:
    state = _state_of(self._get_app())
    if state is not None:
        options["headers"] = _with_context(options.get("headers"), options.get("task_id"), state)
    return _orig_apply(self, *args, **options)


def _raw_header(request: Any) -> object:
    headers = getattr(request, "headers", None)
    if isinstance(headers, Mapping):
        raw = headers.get(HEADER)
        nested = headers.get("headers")
        if raw is None and isinstance(nested, Mapping):
            raw = nested.get(HEADER)
        if raw is not None:
            return raw
    return getattr(request, HEADER, None)


def _on_task_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task is None or task_id is None or _state_of(task._get_app()) is None:
        return
    outer = _current.get()
    activation = activate(_raw_header(task.request), task_id=task_id, task_name=task.name)
    activation.outer = outer
    activation.set_var(_current, activation)


def _on_task_postrun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    activation = _current.get()
    if activation is None or activation.task_id != task_id:
        return
    chain = _eager_chain.get()
    if chain is not None and chain.caller is activation.outer:
        state = _state_of(task._get_app()) if task is not None else None
        try:
            chain.step_context = capture(state.fields if state else ())
        except ContextNotSerializableError:
            chain.step_context = None
    activation.undo()


def install(app: Any, *, fields: Iterable[str] = ()) -> None:
    """Carry the publisher's context into `app`'s tasks (see the module docstring).

    Call it where the app is created, so the publishing processes and the
    workers both run it. Idempotent: a second call only updates `fields`.

    Args:
        app: the `celery.Celery` application.
        fields: app fields of the current `RequestContext` (``ctx.get(name)``) to
            carry as JSON values. Secrets never travel unless named here.

    Raises:
        TypeError: `app` is not a Celery app, or `fields` is not a list of names.
    """
    global _installed_apps, _orig_apply, _orig_chain_apply
    if not isinstance(app, Celery):
        raise TypeError(f"install() expects a celery.Celery application, got {type(app).__name__}")
    names = check_fields(fields, "install")
    with _lock:
        state = _state_of(app)
        if state is not None:
            state.fields = names
            return
        original = app.send_task
        state = _AppState(fields=names, send_task=original)

        def send_task(*args: Any, **options: Any) -> Any:
            options["headers"] = _with_context(
                options.get("headers"), options.get("task_id"), state
            )
            return original(*args, **options)

        send_task.__wrapped__ = original  # type: ignore[attr-defined]
        app.__dict__[_STATE_ATTR] = state
        app.send_task = send_task
        if _installed_apps == 0:
            _patches.install()
            _orig_apply = _patches.original(Task, "apply")
            _orig_chain_apply = _patches.original(_chain, "apply")
            signals.task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid=_DISPATCH_UID)
            signals.task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid=_DISPATCH_UID)
        _installed_apps += 1


def uninstall(app: Any) -> None:
    """Undo `install(app)`. Idempotent. Tasks already running are unaffected."""
    global _installed_apps
    with _lock:
        state = _state_of(app)
        if state is None:
            return
        del app.__dict__[_STATE_ATTR]
        if getattr(app.__dict__.get("send_task"), "__wrapped__", None) is state.send_task:
            del app.__dict__["send_task"]
        _installed_apps -= 1
        if _installed_apps == 0:
            _patches.uninstall()
            signals.task_prerun.disconnect(dispatch_uid=_DISPATCH_UID)
            signals.task_postrun.disconnect(dispatch_uid=_DISPATCH_UID)


def installed(app: Any) -> bool:
    """Whether `install(app)` is in effect."""
    return _state_of(app) is not None
