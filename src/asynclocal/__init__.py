"""asynclocal: request-scoped context for Python with Node.js `AsyncLocalStorage` semantics.

The core (this package's top level) needs only the standard library::

    from asynclocal import AsyncLocalStorage

    request: AsyncLocalStorage[dict[str, str]] = AsyncLocalStorage(name="request")

    def handler() -> str:
        return request.get_store()["id"]

    request.run({"id": "r-1"}, handler)   # -> "r-1"

Boundaries live in `asynclocal.threads` and `asynclocal.processes`; the request
scope, web middleware, logging and integrations in their own subpackages, each
behind an optional extra.
"""

from ._resource import AsyncResource
from ._storage import AsyncLocalStorage, StorageScope
from .request import (
    NoRequestContext,
    RequestContext,
    current_request,
    request_id,
    request_storage,
)

__all__ = [
    "AsyncLocalStorage",
    "AsyncResource",
    "NoRequestContext",
    "RequestContext",
    "StorageScope",
    "current_request",
    "request_id",
    "request_storage",
]

__version__ = "0.1.0"
