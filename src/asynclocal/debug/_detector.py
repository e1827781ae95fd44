"""The context-loss detector: compare the stores visible where work is scheduled and where it runs.

Three standard-library boundaries are watched while the detector is on:

* ``threading.Thread`` starts (found through ``threading``'s low-level start
  function, so `threading.Timer`, subclasses and `asynclocal.threads.Thread`
  are covered whatever else patched ``Thread.start``);
* ``ThreadPoolExecutor`` jobs (``concurrent.futures.thread._WorkItem``), which
  also covers `loop.run_in_executor` and `asyncio.to_thread`;
* ``concurrent.futures.Future.add_done_callback`` callbacks, which run in
  whichever thread completes the future.

For each, the stores of every live `AsyncLocalStorage` are captured when the
work is scheduled, together with the scheduling stack, and compared, just
before the work runs, with what the work will actually see. A store that was
visible and is missing is reported as ``"lost"``; a store that differs from
the scheduled one (a previous job's or another request's) as ``"leak"``.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.thread as cf_thread
import functools
import inspect
import linecache
import logging
import sys
import threading
from collections.abc import Callable
from contextvars import Context, ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from .._patching import Patch, Patches
from .._resource import AsyncResource
from .._storage import AsyncLocalStorage, live_storages

__all__ = ["ContextReport", "clear_reports", "disable", "enable", "enabled", "reports"]

logger = logging.getLogger("asynclocal.debug")

_MISSING: Any = object()
_STACK_LIMIT = 16
_REPR_LIMIT = 120
_MAX_REPORTS = 1000

Boundary = Literal["thread", "executor job", "done callback"]
_BOUNDARY_NAMES: dict[str, str] = {
    "thread": "threading.Thread started",
    "executor job": "ThreadPoolExecutor job",
    "done callback": "concurrent.futures.Future.add_done_callback callback",
}


@dataclass(frozen=True)
class ContextReport:
    """One place where work ran with other stores than where it was scheduled.

    Attributes:
        kind: ``"lost"`` (a store visible when scheduled is missing) or
            ``"leak"`` (the work sees a store that is not the one it was
            scheduled with: a previous job's or another request's).
        boundary: ``"thread"``, ``"executor job"`` or ``"done callback"``.
        storage: the storage's name.
        expected: repr of the store visible when the work was scheduled (None: none).
        found: repr of the store the work sees (None: none).
        target: repr of the function that ran.
        thread: name of the thread it ran in.
        created_at: the scheduling stack, outermost first, as (file, line, function).
    """

    kind: Literal["lost", "leak"]
    boundary: Boundary
    storage: str
    expected: str | None
    found: str | None
    target: str
    thread: str
    created_at: tuple[tuple[str, int, str], ...] = field(repr=False)

    def format(self) -> str:
        """A multi-line description with the scheduling stack, for logs."""
        what = (
            f"store of {self.storage!r} lost: it was {self.expected} when the work was "
            f"scheduled, the work sees none"
            if self.kind == "lost"
            else f"store of {self.storage!r} leaked: the work sees {self.found}, "
            f"it was scheduled with {self.expected or 'no store'}"
        )
        fix = (
            "propagate the context (asynclocal.threads.install(), or "
            "AsyncLocalStorage.bind(fn) for callbacks)"
            if self.kind == "lost"
            else "run each job in its own copy of the submitter's context "
            "(asynclocal.threads.install()) instead of setting stores in the worker"
        )
        lines = [
            f"asynclocal: context {self.kind} at {_BOUNDARY_NAMES[self.boundary]} "
            f"{self.target} in thread {self.thread!r}: {what}; {fix}. Scheduled at:"
        ]
        for filename, lineno, name in self.created_at:
            lines.append(f'  File "{filename}", line {lineno}, in {name}')
            text = linecache.getline(filename, lineno).strip()
            if text:
                lines.append(f"    {text}")
        return "\n".join(lines)


_reports: list[ContextReport] = []
_reports_lock = threading.Lock()

Captured = tuple[tuple[AsyncLocalStorage[Any], ContextVar[Any], Any], ...]
Stack = tuple[tuple[str, int, str], ...]
Lookup = Callable[[ContextVar[Any]], Any]


def _short(value: Any) -> str | None:
    if value is _MISSING:
        return None
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} (repr failed)>"
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


def _capture() -> Captured:
    out = []
    for storage in live_storages():
        var = storage.context_var
        value = var.get(_MISSING)
        if value is storage.default:
            value = _MISSING
        out.append((storage, var, value))
    return tuple(out)


_SKIP_FILES = (threading.__file__, cf_thread.__file__, concurrent.futures._base.__file__, __file__)


def _stack() -> Stack:
    frames: list[tuple[str, int, str]] = []
    f = sys._getframe(2)
    while f is not None and len(frames) < _STACK_LIMIT:
        code = f.f_code
        if code.co_filename not in _SKIP_FILES:
            frames.append((code.co_filename, f.f_lineno, code.co_name))
        f = f.f_back  # type: ignore[assignment]
    frames.reverse()
    return tuple(frames)


def _bound_context(fn: object) -> Context | None:
    """The context `fn` will enter itself, when it is a context-bound callable."""
    for _ in range(8):
        owner = getattr(fn, "__self__", None)
        if isinstance(owner, Context):  # ctx.run, as asynclocal.threads submits jobs
            return owner
        if isinstance(fn, functools.partial):  # asyncio.to_thread: partial(ctx.run, ...)
            fn = fn.func
            continue
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if isinstance(value, Context):
                return value
            if isinstance(getattr(value, "__self__", None), Context):
                return value.__self__  # type: ignore[no-any-return]  # AsyncLocalStorage.bind
            if isinstance(value, AsyncResource):
                return value._copy.__self__  # type: ignore[attr-defined,no-any-return]
        inner = getattr(fn, "__wrapped__", None)  # e.g. an asynclocal.hooks executor job
        if inner is None:
            return None
        fn = inner
    return None


def _lookup_for(fn: object) -> Lookup:
    ctx = _bound_context(fn)
    if ctx is None:
        return lambda var: var.get(_MISSING)
    return lambda var: ctx.get(var, _MISSING)


def _target_name(fn: object) -> str:
    for _ in range(4):  # through functools.wraps-style wrappers
        inner = getattr(fn, "__wrapped__", None)
        if inner is None:
            break
        fn = inner
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else type(fn).__name__


def _check(
    captured: Captured, boundary: Boundary, stack: Stack, target: str, lookup: Lookup
) -> None:
    for storage, var, expected in captured:
        if storage.context_var is not var:
            continue  # disabled since: every store is hidden on purpose
        found = lookup(var)
        if found is storage.default:
            found = _MISSING
        if found is expected:
            continue
        kind: Literal["lost", "leak"] = "lost" if found is _MISSING else "leak"
        report = ContextReport(
            kind=kind,
            boundary=boundary,
            storage=storage.name,
            expected=_short(expected),
            found=_short(found),
            target=target,
            thread=threading.current_thread().name,
            created_at=stack,
        )
        with _reports_lock:
            if len(_reports) < _MAX_REPORTS:
                _reports.append(report)
        logger.warning("%s", report.format())


class _Checked:
    """Runs the work after comparing the stores it will see with the scheduled ones."""

    __slots__ = ("__wrapped__", "_boundary", "_captured", "_label", "_stack")

    def __init__(self, fn: Callable[..., Any], boundary: Boundary, label: str = "") -> None:
        self.__wrapped__ = fn
        self._boundary: Boundary = boundary
        self._label = label
        self._captured = _capture()
        self._stack = _stack()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = self.__wrapped__
        if _installer.installed:
            try:
                shown = (
                    args[0] if args and isinstance(getattr(fn, "__self__", None), Context) else fn
                )
                label = self._label or _target_name(shown)
                _check(self._captured, self._boundary, self._stack, label, _lookup_for(fn))
            except Exception:  # the detector must never break the work it watches
                logger.exception("asynclocal.debug: the context check itself failed")
        return fn(*args, **kwargs)

    def __repr__(self) -> str:
        return repr(self.__wrapped__)


# -- instrumentation -----------------------------------------------------------

# Python 3.13 renamed the low-level start function that Thread.start calls.
_START_NAME = "_start_joinable_thread"
if not hasattr(threading, _START_NAME):
    _START_NAME = "_start_new_thread"
_orig_start: Callable[..., Any] = getattr(threading, _START_NAME)
_orig_work_item_init = cf_thread._WorkItem.__init__
_orig_work_item_run = cf_thread._WorkItem.run
_orig_add_done_callback = concurrent.futures.Future.add_done_callback
_WORK_ITEM_PARAMS = list(inspect.signature(_orig_work_item_init).parameters)
# 3.10-3.13: _WorkItem(future, fn, args, kwargs), the job wrapped where it is made.
_WORK_ITEM_OK = _WORK_ITEM_PARAMS == ["self", "future", "fn", "args", "kwargs"]
# 3.14+: _WorkItem(future, task), run by `_WorkItem.run(worker_ctx)`; for a
# ThreadPoolExecutor the task is (fn, args, kwargs) and worker_ctx a
# `concurrent.futures.thread.WorkerContext`. An InterpreterPoolExecutor's tasks have the
# same shape but go to another interpreter (pickled), so the task itself is never
# wrapped: the stores are captured when the item is made and checked when a
# same-interpreter worker runs it.
_WORK_ITEM_TASK = _WORK_ITEM_PARAMS == ["self", "future", "task"]
_SCHEDULED_ATTR = "_asynclocal_scheduled"
_WORKER_CONTEXT: object = getattr(cf_thread, "WorkerContext", None)
_INTERNAL_MODULES = ("asyncio", "concurrent.futures", "asynclocal.debug")


def _start_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    thread = getattr(function, "__self__", None)
    if (
        isinstance(thread, threading.Thread)
        and getattr(thread, "_target", None) is not cf_thread._worker  # pool workers: see jobs
    ):
        target = getattr(thread, "_target", None)
        label = f"{thread.name!r} ({_target_name(target if target is not None else thread.run)})"
        thread.run = _Checked(thread.run, "thread", label)  # type: ignore[method-assign]
    return _orig_start(function, *args, **kwargs)


def _work_item_init(self: Any, future: Any, fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
    _orig_work_item_init(self, future, _Checked(fn, "executor job"), args, kwargs)


def _make_task_work_item_patches(
    orig_init: Callable[..., None], orig_run: Callable[..., Any], worker_context: type
) -> tuple[Callable[..., None], Callable[..., Any]]:
    """`__init__` and `run` for a 3.14-style `_WorkItem(future, task)` (see above)."""

    def work_item_init(self: Any, future: Any, task: Any) -> None:
        orig_init(self, future, task)
        try:
            setattr(self, _SCHEDULED_ATTR, (_capture(), _stack()))
        except AttributeError:  # pragma: no cover - a _WorkItem with __slots__: unchecked
            pass

    def work_item_run(self: Any, ctx: Any) -> Any:
        scheduled = getattr(self, _SCHEDULED_ATTR, None)
        if scheduled is not None:
            delattr(self, _SCHEDULED_ATTR)
        task = getattr(self, "task", None)
        if (
            scheduled is not None
            and type(ctx) is worker_context  # this interpreter's thread pool
            and type(task) is tuple
            and len(task) == 3
            and _installer.installed
        ):
            try:
                fn, args = task[0], task[1]
                shown = (
                    args[0] if args and isinstance(getattr(fn, "__self__", None), Context) else fn
                )
                captured, stack = scheduled
                _check(captured, "executor job", stack, _target_name(shown), _lookup_for(fn))
            except Exception:  # the detector must never break the work it watches
                logger.exception("asynclocal.debug: the context check itself failed")
        return orig_run(self, ctx)

    return work_item_init, work_item_run


def _add_done_callback(self: concurrent.futures.Future[Any], fn: Callable[..., Any]) -> None:
    module = getattr(fn, "__module__", None)
    if type(module) is str and module.startswith(_INTERNAL_MODULES):
        _orig_add_done_callback(self, fn)
    else:
        _orig_add_done_callback(self, _Checked(fn, "done callback"))


def _patches() -> list[Patch]:
    patches: list[Patch] = [(threading, _START_NAME, _start_thread)]
    if _WORK_ITEM_OK:
        patches.append((cf_thread._WorkItem, "__init__", _work_item_init))
    elif _WORK_ITEM_TASK and isinstance(_WORKER_CONTEXT, type):
        init, run = _make_task_work_item_patches(
            _orig_work_item_init, _orig_work_item_run, _WORKER_CONTEXT
        )
        patches.append((cf_thread._WorkItem, "__init__", init))
        patches.append((cf_thread._WorkItem, "run", run))
    else:  # pragma: no cover - Python versions with another _WorkItem layout
        logger.warning("asynclocal.debug: thread-pool jobs cannot be watched on this Python")
    patches.append((concurrent.futures.Future, "add_done_callback", _add_done_callback))
    return patches


_installer = Patches(_patches)


def enable() -> None:
    """Turn the detector on (idempotent). Reports go to `reports()` and the ``asynclocal.debug``
    logger at WARNING, each with the stack where the work was scheduled.

    Costs nothing until called: no patch is installed before. While on, each
    thread start, pool job and future callback pays a capture of the stores and
    of the scheduling stack (a few microseconds).
    """
    _installer.install()


def disable() -> None:
    """Turn the detector off and remove every patch (idempotent). Reports are kept."""
    _installer.uninstall()


def enabled() -> bool:
    """Whether the detector is on."""
    return _installer.installed


def reports() -> list[ContextReport]:
    """The reports so far, oldest first (at most 1000 are kept)."""
    with _reports_lock:
        return list(_reports)


def clear_reports() -> None:
    """Forget every report."""
    with _reports_lock:
        _reports.clear()
