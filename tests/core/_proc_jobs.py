"""Job functions and storages for the process tests.

They live in an importable module because `spawn` workers re-import them: a
cross-process storage is found in the worker by its name, so it must be created
at import time of a module the worker imports.
"""

from __future__ import annotations

import os
from typing import Any

from asynclocal import AsyncLocalStorage

#: Travels into worker processes.
request: AsyncLocalStorage[dict[str, Any]] = AsyncLocalStorage(
    name="tests.core.request", cross_process=True
)
#: A second cross-process storage, to prove each travels independently.
tenant: AsyncLocalStorage[str] = AsyncLocalStorage(name="tests.core.tenant", cross_process=True)
#: Never travels (no cross_process flag): workers must see its default.
local_only: AsyncLocalStorage[str] = AsyncLocalStorage(name="tests.core.local", default="none")


def read_stores(tag: int = 0) -> tuple[int, Any, Any, str | None, int]:
    """What the job sees: (tag, request store, tenant store, local_only store, pid)."""
    return tag, request.get_store(), tenant.get_store(), local_only.get_store(), os.getpid()


def leave_stores_behind(value: str) -> int:
    """A job that tries to leak: it sets every storage and returns without cleaning up."""
    request.enter_with({"leaked": value})
    tenant.enter_with(value)
    local_only.enter_with(value)
    return os.getpid()


def mutate_store(key: str) -> dict[str, Any] | None:
    """Mutate the received store; the caller's object must not change (it was pickled)."""
    store = request.get_store()
    if store is not None:
        store[key] = True
    return store


def add(a: int, b: int) -> tuple[int, Any]:
    """For starmap: the sum and the request id seen."""
    store = request.get_store()
    return a + b, None if store is None else store.get("id")
