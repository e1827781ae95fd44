"""arq: the enqueuer's context travels with each job and is restored while it runs.

Call `install()` in the enqueuing process and in the worker (the module named
by ``arq WorkerSettings`` is a good place)::

    from asynclocal.integrations import arq as al_arq

    al_arq.install()                  # or al_arq.install(fields=["plan"])

Guarantees (the same as the Celery and RQ integrations):

* ``ArqRedis.enqueue_job`` encodes the current request's ids and trace, the
  stores of the storages created with ``cross_process=True`` and the named app
  fields as JSON, stored next to the job's function and arguments (under the
  key ``"asynclocal"`` of the serialised job; the function's arguments are
  untouched, and a worker without the integration ignores it). A value JSON
  cannot encode raises `ContextNotSerializableError` from ``enqueue_job``,
  naming the storage or field; nothing is enqueued.
* Each job runs (from ``on_job_start`` to the stored result) in the asyncio
  task arq gives it, in a clean context: every storage shows its default
  except the carried cross-process stores, and `current_request()` is a new
  `RequestContext` with ``request_id`` = the arq job id, root id kept,
  ``parent_request_id`` = the enqueuer's request id, the same trace with a new
  span, ``method="TASK"``, ``path`` = the function name. Nothing set by one job
  is visible to the next.
* A retry (``Retry``, a timeout, a lost worker) runs the stored job again, with
  the context it was enqueued with. A job enqueued from a job continues the
  causation chain.

Workers created before `install()` are not covered. Needs the ``arq`` extra.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any

try:
    from arq.connections import ArqRedis
    from arq.worker import Worker
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.integrations.arq needs the 'arq' extra: pip install 'asynclocal[arq]'"
    ) from exc

from .._patching import Patches
from ._queue import HEADER, ContextNotSerializableError, capture, check_fields, decode, restore

__all__ = ["HEADER", "ContextNotSerializableError", "install", "installed", "uninstall"]

#: The encoded context of the job being enqueued by this task.
_outgoing: ContextVar[str | None] = ContextVar("asynclocal.arq.outgoing", default=None)
#: (encoded context, function name) a worker just read from a job, until
#: ``on_job_start`` restores it (both run in the task arq gives the job).
_incoming: ContextVar[object] = ContextVar("asynclocal.arq.incoming", default=None)

_fields: tuple[str, ...] = ()

_MARK = "__asynclocal__"


def _serializer(
    inner: Callable[[dict[str, Any]], bytes] | None,
) -> Callable[[dict[str, Any]], bytes]:
    if getattr(inner, _MARK, False):
        return inner  # type: ignore[return-value]
    dumps = inner or pickle.dumps

    def serialize(data: dict[str, Any]) -> bytes:
        raw = _outgoing.get()
        if raw is not None and isinstance(data, dict) and "f" in data and "r" not in data:
            data = {**data, HEADER: raw}
        return dumps(data)

    setattr(serialize, _MARK, True)
    return serialize


def _deserializer(
    inner: Callable[[bytes], dict[str, Any]] | None,
) -> Callable[[bytes], dict[str, Any]]:
    if getattr(inner, _MARK, False):
        return inner  # type: ignore[return-value]
    loads = inner or pickle.loads

    def deserialize(raw: bytes) -> dict[str, Any]:
        data = loads(raw)
        if isinstance(data, dict) and "f" in data and "r" not in data:
            data = dict(data)
            _incoming.set((data.pop(HEADER, None), data.get("f")))
        return data

    setattr(deserialize, _MARK, True)
    return deserialize


def _on_job_start(hook: Callable[[dict[Any, Any]], Awaitable[Any]] | None) -> Any:
    if getattr(hook, _MARK, False):
        return hook

    async def on_job_start(ctx: dict[Any, Any]) -> None:
        incoming = _incoming.get()
        _incoming.set(None)
        raw, name = incoming if isinstance(incoming, tuple) else (None, None)
        job_id = str(ctx.get("job_id") or "job")
        name = name if isinstance(name, str) else "job"
        restore(decode(raw), task_id=job_id, task_name=name, set_var=_set)
        if hook is not None:
            await hook(ctx)

    setattr(on_job_start, _MARK, True)
    return on_job_start


def _set(var: ContextVar[Any], value: Any) -> None:
    var.set(value)


def _patched_enqueue(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def enqueue_job(self: Any, function: str, *args: Any, **kwargs: Any) -> Any:
        raw = capture(_fields)  # raises ContextNotSerializableError before anything is sent
        self.job_serializer = _serializer(self.job_serializer)
        token = _outgoing.set(raw)
        try:
            return await original(self, function, *args, **kwargs)
        finally:
            _outgoing.reset(token)

    return enqueue_job


def _patched_worker_init(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.job_deserializer = _deserializer(self.job_deserializer)
        self.on_job_start = _on_job_start(self.on_job_start)

    return __init__


_patches = Patches()


def install(*, fields: Iterable[str] = ()) -> None:
    """Carry the enqueuer's context into every arq job (see the module docstring).

    Idempotent: a second call only updates `fields`. `uninstall()` undoes it
    for pools and workers used from then on.

    Args:
        fields: app fields of the current `RequestContext` (``ctx.get(name)``) to
            carry as JSON values. Secrets never travel unless named here.
    """
    global _fields
    names = check_fields(fields, "install")
    with _patches.lock:
        _fields = names
        _patches.install(
            [
                (
                    ArqRedis,
                    "enqueue_job",
                    _patched_enqueue(_patches.original(ArqRedis, "enqueue_job")),
                ),
                (Worker, "__init__", _patched_worker_init(_patches.original(Worker, "__init__"))),
            ]
            if not _patches.installed
            else []
        )


def uninstall() -> None:
    """Undo `install()`. Idempotent."""
    global _fields
    with _patches.lock:
        if _patches.uninstall():
            _fields = ()


def installed() -> bool:
    """Whether `install()` is in effect."""
    return _patches.installed
