"""RQ: the enqueuer's context travels with each job and is restored while it runs.

Either use the job class on both sides::

    from asynclocal.integrations.rq import ContextJob

    class AppJob(ContextJob):
        asynclocal_fields = ("plan",)     # request app fields to carry (optional)

    queue = Queue("default", connection=redis, job_class=AppJob)
    queue.enqueue(send_invoice, 42)
    # worker: rq worker --job-class proj.jobs.AppJob default

or call `install()` in the enqueuing process and in the worker (for example
in the settings module given to ``rq worker -c``), which makes every
`rq.job.Job` do the same.

Guarantees (the same as the Celery integration):

* When a job is created (``enqueue``, ``enqueue_call``, ``enqueue_at``/``in``,
  ``enqueue_many``, dependents), the current request's ids and trace, the stores
  of the storages created with ``cross_process=True`` and the carried app fields
  are encoded as JSON into ``job.meta["asynclocal"]``. A value JSON cannot encode
  raises `ContextNotSerializableError`, naming the storage or field; nothing is
  enqueued.
* ``Job.perform`` imports the job's function first (its module is where
  cross-process storages get created), then runs in a fresh, empty
  `contextvars.Context` holding only the carried cross-process stores (decoded
  JSON) and a new `RequestContext` for the job: ``request_id`` = the job id,
  root id kept, ``parent_request_id`` = the enqueuer's request id, same trace
  with a new span. A job enqueued outside any
  request gets a root context of its own. So a worker (``SimpleWorker``
  included, which runs every job in one process) never runs a job with a
  previous job's stores, and async job functions see the context too.
* Retries re-run the same job with the same meta, so every attempt sees the same
  context. A job enqueued from inside a job continues the causation chain.

Not covered: RQ's ``on_success``/``on_failure`` callbacks run after
``perform``, outside the job's context.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, ClassVar

try:
    from rq.job import Job
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "asynclocal.integrations.rq needs the 'rq' extra: pip install 'asynclocal[rq]'"
    ) from exc

from .._patching import Patches
from ._queue import HEADER, ContextNotSerializableError, capture, check_fields, decode, restore

__all__ = [
    "HEADER",
    "ContextJob",
    "ContextNotSerializableError",
    "install",
    "installed",
    "uninstall",
]

logger = logging.getLogger("asynclocal.integrations")

_orig_create: Any = Job.create.__func__  # type: ignore[attr-defined]
_orig_perform: Any = Job.perform
_fields: tuple[str, ...] = ()


def _set(var: ContextVar[Any], value: Any) -> None:
    var.set(value)


def _create(cls: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
    if len(args) >= 13:  # meta given positionally (the 14th parameter of Job.create)
        args = (*args[:12], dict(args[12] or {}), *args[13:])
        meta = args[12]
    else:
        meta = kwargs["meta"] = dict(kwargs.get("meta") or {})
    fields = getattr(cls, "asynclocal_fields", None)
    meta[HEADER] = capture(_fields if fields is None else fields)
    return _orig_create(cls, func, *args, **kwargs)


def _run_job(job: Any, raw: object) -> Any:
    name = str(getattr(job, "func_name", None) or "job")
    try:
        # Import the job's module first: it is where cross-process storages get created.
        job.func  # noqa: B018
    except Exception:  # perform() reports it as RQ always does
        return _orig_perform(job)
    try:
        restore(decode(raw), task_id=job.id, task_name=name, set_var=_set)
    except Exception:  # never run a job in a half-restored context
        logger.exception("could not restore the context of job %s; running it without", job.id)
        return contextvars.Context().run(_run_job, job, None)
    return _orig_perform(job)


def _perform(self: Any) -> Any:
    meta = self.meta if isinstance(self.meta, dict) else {}
    return contextvars.Context().run(_run_job, self, meta.get(HEADER))


class ContextJob(Job):
    """An `rq.job.Job` that carries the enqueuer's context (see the module docstring).

    Set ``asynclocal_fields`` on a subclass to carry request app fields; otherwise
    the ``fields`` given to `install()` apply.
    """

    asynclocal_fields: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def create(cls, func: Any, *args: Any, **kwargs: Any) -> Any:
        """`Job.create`, with the current context encoded into ``meta``."""
        return _create(cls, func, *args, **kwargs)

    def perform(self) -> Any:
        """`Job.perform`, in a clean context holding the carried stores and request."""
        return _perform(self)


_patches = Patches([(Job, "create", classmethod(_create)), (Job, "perform", _perform)])


def install(*, fields: Iterable[str] = ()) -> None:
    """Make every `rq.job.Job` carry the enqueuer's context. Idempotent.

    Call it in the enqueuing processes and in the worker (before it runs jobs).

    Args:
        fields: app fields of the current `RequestContext` (``ctx.get(name)``) to
            carry as JSON values. Secrets never travel unless named here.
    """
    global _fields
    names = check_fields(fields, "install")
    with _patches.lock:
        _fields = names
        _patches.install()


def uninstall() -> None:
    """Undo `install()`. Idempotent. `ContextJob` keeps working."""
    global _fields
    with _patches.lock:
        if _patches.uninstall():
            _fields = ()


def installed() -> bool:
    """Whether `install()` is in effect."""
    return _patches.installed
