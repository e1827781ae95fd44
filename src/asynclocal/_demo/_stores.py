"""The demo's storages. Importable by process-pool workers (spawn re-imports it)."""

from __future__ import annotations

from dataclasses import dataclass

from .._storage import AsyncLocalStorage


@dataclass
class DemoRequest:
    """A simulated request: what each handler checks its reads against."""

    id: int
    user: str

    @classmethod
    def make(cls, rid: int) -> DemoRequest:
        return cls(rid, f"user-{rid % 97}")


#: Travels with the request into threads and worker processes.
request: AsyncLocalStorage[DemoRequest] = AsyncLocalStorage(
    name="asynclocal.demo.request", cross_process=True
)
#: A second, in-process-only storage: never seen in worker processes.
tenant: AsyncLocalStorage[str] = AsyncLocalStorage(name="asynclocal.demo.tenant")


def current_id() -> int | None:
    store = request.get_store()
    return None if store is None else store.id
