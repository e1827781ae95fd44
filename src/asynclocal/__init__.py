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

Importing any of them changes no behaviour and reads no environment variable;
`enable_from_env()` is the one explicit call that honours ``ASYNCLOCAL_HOOKS`` and
``ASYNCLOCAL_DEBUG``. The full public surface is listed in ``docs/api.md``.
"""

from ._env import enable_from_env
from ._resource import AsyncResource
from ._storage import AsyncLocalStorage, StorageScope
from .errors import AsyncLocalError, NoRequestContextError, RequestRejected
from .request import (
    NoRequestContext,
    RequestContext,
    current_request,
    request_id,
    request_storage,
    with_request_context,
)

__all__ = [
    "AsyncLocalError",
    "AsyncLocalStorage",
    "AsyncResource",
    "NoRequestContext",
    "NoRequestContextError",
    "RequestContext",
    "RequestRejected",
    "StorageScope",
    "current_request",
    "enable_from_env",
    "request_id",
    "request_storage",
    "with_request_context",
]

from ._version import __version__ as __version__
