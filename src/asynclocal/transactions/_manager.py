"""`TransactionManager`: the request's SQLAlchemy transaction, in its own `AsyncLocalStorage`."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

try:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
    from sqlalchemy.orm import Session, sessionmaker
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.transactions needs the 'sqlalchemy' extra: pip install 'asynclocal[sqlalchemy]'"
    ) from exc

from .._storage import AsyncLocalStorage
from ._decorator import ExcTypes, check_exc_types, make_decorator
from ._scope import TransactionScope, install_commit_guard
from ._types import IllegalTransactionState, NoActiveTransaction, Propagation, Transaction

__all__ = ["TransactionManager", "TransactionScope", "live_managers"]

SessionT = TypeVar("SessionT", Session, AsyncSession)
F = TypeVar("F", bound=Callable[..., Any])

_live: weakref.WeakSet[TransactionManager[Any]] = weakref.WeakSet()
_live_lock = threading.Lock()


class TransactionManager(Generic[SessionT]):
    """Transactions bound to the current request (or task, or thread) for one database.

    `TransactionManager(engine)` takes a sync `Engine` or `sessionmaker` (blocks
    use `with` and sync functions) or an `AsyncEngine` or `async_sessionmaker`
    (blocks use `async with` and async functions). An engine gets a session
    factory with ``expire_on_commit=False`` so objects stay readable after the
    commit; pass your own sessionmaker to choose otherwise.

    The current transaction lives in the manager's own `AsyncLocalStorage`, so
    it follows the request through awaits, tasks and (with `asynclocal.threads`)
    threads, and two requests never see each other's transaction.

    Rules for work started inside a transaction (see docs/transactions.md):

    * Only the block that opened a transaction commits, rolls back and closes
      it; blocks that join it never do, and `session.commit()` called by hand
      raises `IllegalTransactionState`.
    * A child asyncio task inherits the transaction and may join it, one task at
      a time (an `AsyncSession` is not safe for concurrent use); concurrent child
      tasks that write should use `REQUIRES_NEW`. If a child is still inside a
      joined block when the owner's block ends, the transaction is rolled back
      and the owner gets `IllegalTransactionState`; a child that touches it
      afterwards gets `IllegalTransactionState` too.
    * A session is never used from a thread other than the one that opened it:
      joining from another thread raises `IllegalTransactionState`
      (`REQUIRES_NEW` in that thread opens its own).

    Raises:
        TypeError: `bind` is not an Engine, AsyncEngine, sessionmaker or async_sessionmaker.
    """

    @overload
    def __init__(
        self: TransactionManager[Session],
        bind: Engine | sessionmaker[Session],
        *,
        name: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: TransactionManager[AsyncSession],
        bind: AsyncEngine | async_sessionmaker[AsyncSession],
        *,
        name: str | None = None,
    ) -> None: ...

    def __init__(self, bind: Any, *, name: str | None = None) -> None:
        factory: Any
        if isinstance(bind, AsyncEngine):
            factory, is_async = async_sessionmaker(bind, expire_on_commit=False), True
        elif isinstance(bind, async_sessionmaker):
            factory, is_async = bind, True
        elif isinstance(bind, Engine):
            factory, is_async = sessionmaker(bind, expire_on_commit=False), False
        elif isinstance(bind, sessionmaker):
            factory, is_async = bind, False
        else:
            raise TypeError(
                "TransactionManager(bind) expects a SQLAlchemy Engine, AsyncEngine, "
                f"sessionmaker or async_sessionmaker, got {type(bind).__name__}; create one "
                "with sqlalchemy.create_engine(url) or sqlalchemy.ext.asyncio.create_async_engine"
            )
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise TypeError("TransactionManager(name=...) must be a non-empty str")
        if not is_async:
            install_commit_guard(factory)
        self._factory: Callable[[], SessionT] = factory
        self._is_async = is_async
        self._name = name or f"tx-{id(self):x}"
        self._storage: AsyncLocalStorage[Transaction[SessionT]] = AsyncLocalStorage(
            name=f"transactions:{self._name}"
        )
        with _live_lock:
            _live.add(self)

    # -- attributes ---------------------------------------------------------

    @property
    def is_async(self) -> bool:
        """True when the manager makes `AsyncSession`s (blocks use ``async with``)."""
        return self._is_async

    @property
    def name(self) -> str:
        """The manager's label (used in its storage's name)."""
        return self._name

    @property
    def storage(self) -> AsyncLocalStorage[Transaction[SessionT]]:
        """The storage holding the innermost `Transaction` record of the current context."""
        return self._storage

    @property
    def session_factory(self) -> Callable[[], SessionT]:
        """The sessionmaker new transactions get their session from."""
        return self._factory

    def __repr__(self) -> str:
        kind = "async" if self._is_async else "sync"
        return f"<TransactionManager {self._name!r} {kind}>"

    # -- reading ------------------------------------------------------------

    def current_transaction(self) -> Transaction[SessionT] | None:
        """The innermost transaction record visible here (a suspension included), or None."""
        return self._storage.get_store()

    def in_transaction(self) -> bool:
        """True when a transaction is active here and usable from this thread."""
        record = self._storage.get_store()
        return (
            record is not None
            and record.is_active
            and record.root.is_active
            and record.owner_thread == threading.get_ident()
        )

    def current_session(self) -> SessionT:
        """The session of the transaction active here, however deep the caller is.

        Raises:
            NoActiveTransaction: no transaction is active (or a `NOT_SUPPORTED`
                block suspended it).
            IllegalTransactionState: the inherited transaction already ended, or
                it was opened in another thread.
        """
        record = self._storage.get_store()
        if record is None:
            raise NoActiveTransaction(
                f"no transaction of {self!r} is active here; run the calling code inside "
                "@transactional or `with transaction():` (`async with` for an AsyncEngine) "
                "so repository code can find the request's session"
            )
        if record.session is None:
            raise NoActiveTransaction(
                "the transaction is suspended here by a NOT_SUPPORTED block; open a new one "
                "inside it with transaction() if this code needs a session"
            )
        self._check_usable(record)
        return record.session

    def _check_usable(self, record: Transaction[SessionT]) -> None:
        if not record.root.is_active or not record.is_active:
            raise IllegalTransactionState(
                f"the transaction this code inherited ({record!r}) already ended. A task or "
                "thread started inside a transaction block must finish before the block ends: "
                "await it inside the block, or give it its own transaction with REQUIRES_NEW"
            )
        if record.owner_thread != threading.get_ident():
            raise IllegalTransactionState(
                "SQLAlchemy sessions are not thread-safe: this transaction was opened in thread "
                f"{record.owner_thread} and cannot be used from thread {threading.get_ident()} "
                f"({threading.current_thread().name}). Run the work in the opening thread, or "
                "open an independent transaction in this thread with propagation=REQUIRES_NEW"
            )

    # -- blocks and decorators -------------------------------------------------

    def transaction(
        self,
        propagation: Propagation | str = Propagation.REQUIRED,
        *,
        no_rollback_for: ExcTypes = (),
    ) -> TransactionScope[SessionT]:
        """A block that joins the active transaction or opens one, per `propagation`.

        Use ``with`` for a sync manager and ``async with`` for an async one; the
        block yields the session (None when it runs without a transaction). On a
        normal exit the block that opened the transaction commits it and closes
        the session; on an exception it rolls back (a `NESTED` block rolls back
        only its savepoint) and the exception propagates. Exceptions that are
        instances of `no_rollback_for` commit instead, and still propagate.

        Raises:
            TypeError, ValueError: invalid `propagation` or `no_rollback_for`.
        """
        return TransactionScope(
            self, Propagation.parse(propagation), check_exc_types(no_rollback_for)
        )

    @overload
    def transactional(self, fn: F, /) -> F: ...

    @overload
    def transactional(
        self,
        propagation: Propagation | str = Propagation.REQUIRED,
        /,
        *,
        no_rollback_for: ExcTypes = (),
    ) -> Callable[[F], F]: ...

    def transactional(
        self,
        fn_or_propagation: Any = Propagation.REQUIRED,
        /,
        *,
        no_rollback_for: ExcTypes = (),
    ) -> Any:
        """Decorator form of `transaction()` for sync and async functions.

        ``@tm.transactional``, ``@tm.transactional()`` or
        ``@tm.transactional(Propagation.NESTED)``.

        Raises:
            TypeError: the function is a generator, or its kind (sync/async) does
                not match the manager's.
        """
        if callable(fn_or_propagation) and not isinstance(fn_or_propagation, str):
            return make_decorator(lambda: self, self, Propagation.REQUIRED, ())(fn_or_propagation)
        return make_decorator(
            lambda: self,
            self,
            Propagation.parse(fn_or_propagation),
            check_exc_types(no_rollback_for),
        )


def live_managers() -> list[TransactionManager[Any]]:
    """Every `TransactionManager` alive in this process."""
    with _live_lock:
        return list(_live)
