"""Work the demo sends to threads and worker processes (importable, so picklable)."""

from __future__ import annotations

import hashlib
import os

from ._stores import DemoRequest, current_id, request, tenant


def thread_job(rid: int) -> tuple[int | None, str | None]:
    """Runs on a pooled thread: report what it sees, then try to leak a store."""
    seen = (current_id(), tenant.get_store())
    hashlib.sha256(str(rid).encode() * 64).digest()  # a little real work
    # A job that forgets to clean up: the next job on this thread must not see it.
    request.enter_with(DemoRequest(-1, "leaked"))
    tenant.enter_with("leaked")
    return seen


def process_job(rid: int) -> tuple[int, int | None, str | None, int]:
    """Runs in a worker process: report what it sees, then try to leak a store."""
    seen = current_id()
    leaked_tenant = tenant.get_store()  # in-process only: must never arrive here
    request.enter_with(DemoRequest(-1, "leaked"))
    return rid, seen, leaked_tenant, os.getpid()
