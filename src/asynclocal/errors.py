"""Every exception asynclocal raises, in one tree under `AsyncLocalError`.

Catch `AsyncLocalError` to handle anything this package raises on purpose::

    AsyncLocalError
    ├── NoRequestContextError        (LookupError) no request is being served here
    ├── ScopeNotActiveError          (LookupError) a RequestScope read outside its run
    ├── ReadOnlyError                (TypeError)   a write through a read-only view
    ├── UnknownFlagError             (KeyError)    a feature flag that was never defined
    ├── ConfigurationError           (ValueError)  a setup call got a value it cannot use
    │   └── UnknownOptionError           (TypeError)   a keyword option that does not exist
    ├── CrossProcessError            (RuntimeError) a store could not cross a process
    │   ├── StoreNotPicklableError       (TypeError)
    │   ├── UnknownStorageError          (LookupError)
    │   └── ContextNotSerializableError  (TypeError)   a task/message context is not JSON
    ├── TransactionError
    │   ├── NoActiveTransactionError     (LookupError)
    │   ├── IllegalTransactionStateError (RuntimeError)
    │   ├── TransactionRolledBackError
    │   └── NoTransactionManagerError    (LookupError)
    └── RequestRejected              answered by every web integration with its own status
        ├── InvalidRequestId             400
        ├── Unauthenticated              401
        ├── TokenRefreshError            401
        └── Forbidden                    403

One warning category, `ConfigurationWarning` (a `UserWarning`), marks a setting that was
ignored because its value is not understood (e.g. by `asynclocal.enable_from_env`).

Each class also derives from the builtin named beside it, so code written
against the builtin keeps working. `RequestRejected` and its subclasses are not
named "...Error": they are answers (an HTTP status and a public message), not
faults; a web integration turns them into a response and logs nothing.

The names the first release used stay importable as aliases of the same
classes, from the same places: `NoRequestContext`, `ScopeNotActive`,
`NoActiveTransaction`, `IllegalTransactionState`, `TransactionRolledBack`,
`NoTransactionManager`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._header_rules import checked_header_pairs

__all__ = [
    "AsyncLocalError",
    "ConfigurationError",
    "ConfigurationWarning",
    "ContextNotSerializableError",
    "CrossProcessError",
    "Forbidden",
    "IllegalTransactionState",
    "IllegalTransactionStateError",
    "InvalidRequestId",
    "NoActiveTransaction",
    "NoActiveTransactionError",
    "NoRequestContext",
    "NoRequestContextError",
    "NoTransactionManager",
    "NoTransactionManagerError",
    "ReadOnlyError",
    "RequestRejected",
    "ScopeNotActive",
    "ScopeNotActiveError",
    "StoreNotPicklableError",
    "TokenRefreshError",
    "TransactionError",
    "TransactionRolledBack",
    "TransactionRolledBackError",
    "Unauthenticated",
    "UnknownFlagError",
    "UnknownOptionError",
    "UnknownStorageError",
]


class AsyncLocalError(Exception):
    """Base class of every exception asynclocal raises on purpose."""


class ConfigurationError(AsyncLocalError, ValueError):
    """A setup call (middleware, policy, `configure`, `install`) got a value it cannot use.

    The message names the argument and what it accepts; it never repeats a
    secret. Raised where the call is made, not at the first request.
    """


class UnknownOptionError(ConfigurationError, TypeError):
    """A setup call or settings dict named an option that does not exist (a typo).

    The message names the unknown option, the closest valid one and every valid
    option. It is a `TypeError` too, as Python's own unexpected-keyword error is.
    """


# --- the request scope -------------------------------------------------------------------


class ConfigurationWarning(UserWarning):
    """A setting was ignored because its value is not understood; nothing else changed."""


class NoRequestContextError(AsyncLocalError, LookupError):
    """Raised by `current_request()` when the calling code does not serve a request."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "no request context is active here. Install the request middleware for your "
            "framework (asynclocal.web.asgi.RequestContextMiddleware for Starlette/FastAPI/"
            "Litestar/Django ASGI, asynclocal.web.wsgi.RequestContextMiddleware for Flask/"
            "Django WSGI, asynclocal.web.aiohttp.request_context_middleware for aiohttp), or "
            "wrap the code in asynclocal.with_request_context(request, handler). Work started "
            "in a thread, process or task queue also needs asynclocal.threads/processes "
            "propagation."
        )


class ScopeNotActiveError(AsyncLocalError, LookupError):
    """Raised when a `RequestScope` is read or written outside any `run`."""


class ReadOnlyError(AsyncLocalError, TypeError):
    """Raised on any attempt to change a value through a `readonly` view."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: this is a read-only view of the request's store; change it only in the "
            "code that owns the request (RequestScope.set / RequestContext.set)"
        )


class UnknownFlagError(AsyncLocalError, KeyError):
    """A feature flag was evaluated that no `FeatureFlags` definition names."""


# --- crossing processes and task queues --------------------------------------------------


class CrossProcessError(AsyncLocalError, RuntimeError):
    """A store could not be carried into another process."""


class StoreNotPicklableError(CrossProcessError, TypeError):
    """A cross-process storage holds a store that `pickle` cannot serialise."""


class UnknownStorageError(CrossProcessError, LookupError):
    """The worker has no cross-process storage with the name the job was sent with."""


class ContextNotSerializableError(CrossProcessError, TypeError):
    """A cross-process store or a carried app field cannot be encoded as JSON.

    Raised when the task or message is published, before anything is sent. The
    message names the storage (or field) and the type that failed.
    """


# --- transactions ------------------------------------------------------------------------


class TransactionError(AsyncLocalError):
    """Base class of every error raised by `asynclocal.transactions`."""


class NoActiveTransactionError(TransactionError, LookupError):
    """No transaction is active where one is required (`current_session()`, `MANDATORY`)."""


class IllegalTransactionStateError(TransactionError, RuntimeError):
    """The transaction cannot be used from here (`NEVER` inside one, wrong thread, ended...)."""


class TransactionRolledBackError(TransactionError):
    """The block ended normally but its transaction was marked rollback-only, so it rolled back.

    Raised when code that joined the transaction failed (its exception was
    caught by the caller) or called `Transaction.set_rollback_only()`: the work
    done so far was not committed.
    """


class NoTransactionManagerError(TransactionError, LookupError):
    """A module-level helper found no `TransactionManager` to use."""


# --- answers: mapped to an HTTP status by every web integration ---------------------------


class RequestRejected(AsyncLocalError):
    """Base for answers that every web integration turns into an HTTP status response.

    Subclasses set `status_code` (e.g. `Forbidden` uses 403). The response body
    is `public_message`, never the exception's details.

    `headers` are ``(name, value)`` pairs every integration adds to that
    response, next to the request id header (which always stays the
    middleware's own). Set them on the class (``headers = (("Retry-After",
    "3"),)``) or per instance with ``raise MyRejection(detail, headers=[...])``,
    which replaces the class default (pass ``(*MyRejection.headers, extra)`` to
    extend it). A repeated name is sent twice where the framework allows it,
    else joined with ``", "`` (Django, Litestar, Lambda).

    Raises:
        TypeError: `headers` is not a sequence or mapping of ``(str, str)`` pairs.
        ValueError: a header name is not an RFC 9110 token, or a value contains
            CR, LF, other control characters or a character outside Latin-1.
    """

    status_code: int = 400
    public_message: str = "Bad Request"
    headers: tuple[tuple[str, str], ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "headers" in cls.__dict__:  # a class-level default: checked once, at definition
            cls.headers = checked_header_pairs(cls.__dict__["headers"], f"{cls.__name__}.headers")

    def __init__(
        self,
        *args: object,
        headers: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(*args)
        if headers is not None:
            self.headers = checked_header_pairs(headers, f"{type(self).__name__}(headers=...)")


class InvalidRequestId(RequestRejected):
    """The incoming request id was invalid and the policy rejects instead of replacing.

    Answered with 400 by every integration; the body never contains the value.
    """

    status_code = 400
    public_message = "Invalid request id header"


class Unauthenticated(RequestRejected):
    """No user is attached to the request (or there is no request at all). HTTP 401.

    The response carries ``WWW-Authenticate: Bearer`` (RFC 9110 §11.6.1 requires a
    challenge on every 401); pass ``headers=[("WWW-Authenticate", 'Bearer realm="api"')]``
    or subclass to change it.
    """

    status_code = 401
    public_message = "Unauthorized"
    headers = (("WWW-Authenticate", "Bearer"),)


class TokenRefreshError(RequestRejected):
    """The request's access token was rejected and could not be refreshed. HTTP 401.

    The response carries ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750
    §3.1), telling the client to sign in again; ``headers=[...]`` replaces it.
    """

    status_code = 401
    public_message = "Unauthorized"
    headers = (("WWW-Authenticate", 'Bearer error="invalid_token"'),)


class Forbidden(RequestRejected):
    """The request's user may not do this. HTTP 403; `reason` says which rule denied it."""

    status_code = 403
    public_message = "Forbidden"

    def __init__(self, reason: str, *, user_id: str | None = None) -> None:
        super().__init__(f"forbidden for user {user_id!r}: {reason}")
        self.reason = reason
        self.user_id = user_id


# The first release's names, kept as aliases of the same classes.
NoRequestContext = NoRequestContextError
ScopeNotActive = ScopeNotActiveError
NoActiveTransaction = NoActiveTransactionError
IllegalTransactionState = IllegalTransactionStateError
TransactionRolledBack = TransactionRolledBackError
NoTransactionManager = NoTransactionManagerError
