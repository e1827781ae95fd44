"""SQLAlchemy 2 transactions bound to the current request, with Spring-style propagation.

Needs the ``sqlalchemy`` extra (``pip install 'asynclocal[sqlalchemy]'``)::

    from asynclocal.transactions import TransactionManager, Propagation

    tm = TransactionManager(create_async_engine(url))   # or a sync Engine / sessionmaker

    async def insert_order(order):                    # three calls deep, no session argument
        tm.current_session().add(order)

    @tm.transactional                                 # join the request's transaction or open one
    async def place_order(order):
        await insert_order(order)
        async with tm.transaction(Propagation.NESTED):  # a savepoint, rolled back alone
            ...

The block that opens a transaction commits it on success, rolls it back on an
exception and closes the session; nothing stays open after it. The module-level
`transactional`, `transaction` and `current_session` use the manager given as
``manager=`` or the default one (`set_default_manager`, or the only manager
alive). See docs/transactions.md for the rules on tasks and threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

from ..errors import (
    IllegalTransactionStateError,
    NoActiveTransactionError,
    NoTransactionManagerError,
    TransactionRolledBackError,
)
from ._decorator import ExcTypes, check_exc_types, make_decorator
from ._manager import TransactionManager, TransactionScope, live_managers
from ._types import IllegalTransactionState as IllegalTransactionState
from ._types import NoActiveTransaction as NoActiveTransaction
from ._types import NoTransactionManager as NoTransactionManager
from ._types import Propagation, Transaction, TransactionError
from ._types import TransactionRolledBack as TransactionRolledBack

# The first release's error names (IllegalTransactionState, NoActiveTransaction,
# NoTransactionManager, TransactionRolledBack) stay importable as aliases of the
# same classes; the names below are the documented ones.
__all__ = [
    "IllegalTransactionStateError",
    "NoActiveTransactionError",
    "NoTransactionManagerError",
    "Propagation",
    "Transaction",
    "TransactionError",
    "TransactionManager",
    "TransactionRolledBackError",
    "TransactionScope",
    "current_session",
    "get_default_manager",
    "set_default_manager",
    "transaction",
    "transactional",
]

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_default: TransactionManager[Any] | None = None


def set_default_manager(manager: TransactionManager[Any] | None) -> None:
    """Make `manager` the one the module-level helpers use (None forgets it).

    Raises:
        TypeError: `manager` is not a `TransactionManager` or None.
    """
    global _default
    if manager is not None and not isinstance(manager, TransactionManager):
        raise TypeError(
            f"set_default_manager() expects a TransactionManager, got {type(manager).__name__}"
        )
    with _lock:
        _default = manager


def get_default_manager() -> TransactionManager[Any]:
    """The manager set by `set_default_manager`, else the only live one.

    Raises:
        NoTransactionManager: none was set and zero or several managers exist.
    """
    with _lock:
        if _default is not None:
            return _default
        live = live_managers()
    if len(live) == 1:
        return live[0]
    raise NoTransactionManager(
        "no default TransactionManager: "
        + ("none was created yet" if not live else f"{len(live)} exist")
        + "; call set_default_manager(tm) once at start-up, or pass manager=tm"
    )


def _resolve(manager: TransactionManager[Any] | None) -> TransactionManager[Any]:
    if manager is None:
        return get_default_manager()
    if not isinstance(manager, TransactionManager):
        raise TypeError(f"manager must be a TransactionManager, got {type(manager).__name__}")
    return manager


def current_session(manager: TransactionManager[Any] | None = None) -> Any:
    """The session of the transaction active here (a `Session` or an `AsyncSession`).

    Typed code may prefer `tm.current_session()`, which is typed by the manager.

    Raises:
        NoActiveTransaction: no transaction is active here.
        IllegalTransactionState: the inherited transaction ended or belongs to another thread.
        NoTransactionManager: `manager` is None and there is no default manager.
    """
    return _resolve(manager).current_session()


def transaction(
    propagation: Propagation | str = Propagation.REQUIRED,
    *,
    manager: TransactionManager[Any] | None = None,
    no_rollback_for: ExcTypes = (),
) -> TransactionScope[Any]:
    """`manager.transaction(propagation)` on `manager` or the default manager.

    Raises:
        NoTransactionManager: `manager` is None and there is no default manager.
    """
    return _resolve(manager).transaction(propagation, no_rollback_for=no_rollback_for)


@overload
def transactional(fn: F, /) -> F: ...


@overload
def transactional(
    propagation: Propagation | str = Propagation.REQUIRED,
    /,
    *,
    manager: TransactionManager[Any] | None = None,
    no_rollback_for: ExcTypes = (),
) -> Callable[[F], F]: ...


def transactional(
    fn_or_propagation: Any = Propagation.REQUIRED,
    /,
    *,
    manager: TransactionManager[Any] | None = None,
    no_rollback_for: ExcTypes = (),
) -> Any:
    """Run each call of a sync or async function inside `transaction(propagation)`.

    ``@transactional``, ``@transactional()``, ``@transactional(Propagation.NESTED)``,
    ``@transactional("requires_new", manager=tm)``. Without ``manager=`` the
    default manager is looked up at call time, so functions may be decorated
    before the manager is created.

    Raises:
        TypeError: the function is a generator, or its kind (sync/async) does not
            match the manager's (checked at decoration when ``manager=`` is given).
        ValueError: unknown propagation.
    """
    if manager is not None and not isinstance(manager, TransactionManager):
        raise TypeError(f"manager must be a TransactionManager, got {type(manager).__name__}")
    if callable(fn_or_propagation) and not isinstance(fn_or_propagation, str):
        return make_decorator(get_default_manager, manager, Propagation.REQUIRED, ())(
            fn_or_propagation
        )
    return make_decorator(
        get_default_manager,
        manager,
        Propagation.parse(fn_or_propagation),
        check_exc_types(no_rollback_for),
    )
