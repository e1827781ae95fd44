"""`TransactionScope`: what one `transaction()` block does on entry and exit."""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ..request import request_id as _request_id
from ._types import (
    IllegalTransactionState,
    NoActiveTransaction,
    Propagation,
    Transaction,
    TransactionRolledBack,
)

if TYPE_CHECKING:
    from ._manager import TransactionManager

__all__ = ["TransactionScope", "install_commit_guard"]

SessionT = TypeVar("SessionT", Session, AsyncSession)

_log = logging.getLogger("asynclocal.transactions")
_MANAGED = "asynclocal.transaction"
_COMMITTING = "asynclocal.committing"

# What a block does on entry, decided from its propagation and the active transaction.
_JOIN, _NEW, _NESTED, _NONE, _SUSPEND = range(5)


def _guard_commit(session: Session) -> None:
    # Only the block that opened the transaction commits it; a direct commit() from
    # repository code (or from a child task) would end the request's transaction early.
    info = session.info
    if not info.get(_MANAGED) or info.get(_COMMITTING) or session.in_nested_transaction():
        return
    raise IllegalTransactionState(
        "this session belongs to a transaction opened by asynclocal's TransactionManager; it "
        "commits when the block that opened it ends. Do not call session.commit() yourself: "
        "end the @transactional function or the `with transaction()` block instead, or open "
        "an independent transaction with propagation=REQUIRES_NEW"
    )


# The sync sessionmakers that got the listener. Not `event.contains(factory, ...)`:
# SQLAlchemy keys that registry by id() of the sessionmaker's Session class, so a new
# sessionmaker whose class reuses a collected one's address looks guarded when it is
# not (CPython 3.13's allocator reuses such addresses readily).
_guarded: weakref.WeakSet[Any] = weakref.WeakSet()
_guarded_lock = threading.Lock()


def install_commit_guard(factory: Any) -> None:
    """Refuse hand-made commits on the managed sessions a sync sessionmaker makes."""
    with _guarded_lock:
        if factory in _guarded:
            return
        event.listen(factory, "before_commit", _guard_commit)
        _guarded.add(factory)


class TransactionScope(Generic[SessionT]):
    """The block returned by `TransactionManager.transaction()`; enter it once."""

    __slots__ = (
        "_entered",
        "_foreign",
        "_manager",
        "_no_rollback",
        "_plan",
        "_propagation",
        "_record",
        "_scope",
    )

    def __init__(
        self,
        manager: TransactionManager[SessionT],
        propagation: Propagation,
        no_rollback_for: tuple[type[BaseException], ...],
    ) -> None:
        self._manager: TransactionManager[SessionT] = manager
        self._propagation = propagation
        self._no_rollback = no_rollback_for
        self._entered = False
        self._plan = _NONE
        self._record: Transaction[SessionT] | None = None
        self._scope: Any = None
        self._foreign = False

    # -- shared logic -----------------------------------------------------------

    def _decide(self) -> int:
        if self._entered:
            raise IllegalTransactionState(
                "this transaction() block was already entered; call transaction() for each block"
            )
        self._entered = True
        manager = self._manager
        current = manager._storage.get_store()
        active = current if current is not None and current.session is not None else None
        p = self._propagation
        self._record = active
        if p is Propagation.REQUIRES_NEW:
            return _NEW
        if p is Propagation.NOT_SUPPORTED:
            return _SUSPEND if active is not None and active.root.is_active else _NONE
        if p is Propagation.NEVER:
            if active is not None and active.root.is_active:
                raise IllegalTransactionState(
                    f"propagation NEVER, but a transaction is active here ({active!r}); call "
                    "this code outside the transaction, or wrap it in a NOT_SUPPORTED block"
                )
            return _NONE
        if active is None:
            if p is Propagation.MANDATORY:
                raise NoActiveTransaction(
                    "propagation MANDATORY needs an active transaction, and there is none here; "
                    "call this code from inside @transactional or a transaction() block"
                )
            return _NONE if p is Propagation.SUPPORTS else _NEW
        manager._check_usable(active)
        if manager._is_async and not active.root.owned_by(asyncio.current_task()):
            self._foreign = True
            active.root._foreign_users += 1
        return _NESTED if p is Propagation.NESTED else _JOIN

    def _new_record(self, session: SessionT | None, savepoint: Any = None) -> Transaction[SessionT]:
        outer = self._manager._storage.get_store()
        active = self._record
        record: Transaction[SessionT] = Transaction(
            session,
            self._propagation,
            outer,
            root=active.root if savepoint is not None and active is not None else None,
            savepoint=savepoint,
            owner_task=asyncio.current_task() if self._manager._is_async else None,
            request_id=_request_id(),
        )
        self._scope = self._manager._storage.scope(record)
        self._scope.__enter__()
        self._record = record
        return record

    def _new_session(self) -> SessionT:
        session = self._manager._factory()
        sync_session = session.sync_session if isinstance(session, AsyncSession) else session
        sync_session.info[_MANAGED] = True
        if self._manager._is_async:
            # A sync sessionmaker got the listener once, in TransactionManager.__init__.
            event.listen(sync_session, "before_commit", _guard_commit)
        return session

    def _enter_without_io(self) -> SessionT | None:
        """Enter every plan but NESTED (whose savepoint the caller begins, sync or async)."""
        plan = self._plan
        if plan == _NEW:
            return self._new_record(self._new_session()).session
        if plan == _SUSPEND:
            self._new_record(None)
            return None
        return self._record.session if plan == _JOIN and self._record is not None else None

    def _joined_session(self) -> SessionT:
        """The session of the transaction a NESTED block makes a savepoint in."""
        assert self._record is not None
        assert self._record.session is not None
        return self._record.session

    def _wants_commit(self, exc: BaseException | None) -> bool:
        return exc is None or isinstance(exc, self._no_rollback)

    def _leave(self, exc: BaseException | None) -> None:
        """Pop the record (if pushed) and settle the bookkeeping that needs no I/O."""
        if self._scope is not None:
            self._scope.__exit__(None, None, None)
        record = self._record
        if self._foreign and record is not None:
            record.root._foreign_users -= 1
        if self._plan == _JOIN and record is not None and not self._wants_commit(exc):
            record.rollback_only = True
        if self._plan == _SUSPEND and record is not None:
            record._active = False

    def _rollback_only_error(self, record: Transaction[SessionT]) -> TransactionRolledBack:
        what = "savepoint" if record.is_nested else "transaction"
        return TransactionRolledBack(
            f"the {what} was rolled back instead of committed: it was marked rollback-only "
            "because code that joined it raised (and the exception was caught) or called "
            "set_rollback_only(). Use propagation=NESTED for inner work whose failure the "
            "caller recovers from, or no_rollback_for=(...) for expected exceptions"
        )

    def _refused_error(self, record: Transaction[SessionT]) -> Exception:
        """Why a block that raised nothing was rolled back instead of committed."""
        if record._foreign_users:
            return self._foreign_users_error(record)
        return self._rollback_only_error(record)

    def _foreign_users_error(self, record: Transaction[SessionT]) -> IllegalTransactionState:
        return IllegalTransactionState(
            f"{record.root._foreign_users} block(s) in other tasks were still using the "
            "transaction when its block ended, so it was rolled back. Await the tasks started "
            "inside a transaction before the block ends, or give them REQUIRES_NEW"
        )

    # -- sync -------------------------------------------------------------------

    def __enter__(self) -> SessionT | None:
        if self._manager._is_async:
            raise TypeError(
                f"{self._manager!r} makes AsyncSessions: use `async with transaction()`, or "
                "build the manager on a sync Engine for `with`"
            )
        self._plan = self._decide()
        if self._plan != _NESTED:
            return self._enter_without_io()
        sync_session: Session = self._joined_session()  # type: ignore[assignment]
        try:
            savepoint = sync_session.begin_nested()
        except BaseException:
            self._leave(None)
            raise
        return self._new_record(self._joined_session(), savepoint).session

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._leave(exc)
        record = self._record
        if record is None or self._plan in (_JOIN, _NONE, _SUSPEND):
            return
        if self._plan == _NESTED:
            self._end_savepoint_sync(record, exc)
        else:
            self._end_root_sync(record, exc)

    def _end_savepoint_sync(self, record: Transaction[SessionT], exc: BaseException | None) -> None:
        savepoint = record.savepoint
        try:
            if self._wants_commit(exc) and not record.rollback_only:
                savepoint.commit()
            elif exc is None:
                savepoint.rollback()
                raise self._rollback_only_error(record)
            else:
                _quietly(savepoint.rollback)
        finally:
            record._active = False

    def _end_root_sync(self, record: Transaction[SessionT], exc: BaseException | None) -> None:
        session: Session = record.session  # type: ignore[assignment]
        try:
            if not self._wants_commit(exc):
                _quietly(session.rollback)
            elif record._foreign_users or record.rollback_only:
                session.rollback()
                if exc is None:
                    raise self._refused_error(record)
            else:
                session.info[_COMMITTING] = True
                try:
                    session.commit()
                except BaseException:
                    _quietly(session.rollback)
                    raise
        finally:
            record._active = False
            session.close()

    # -- async ------------------------------------------------------------------

    async def __aenter__(self) -> SessionT | None:
        if not self._manager._is_async:
            raise TypeError(
                f"{self._manager!r} makes sync Sessions: use `with transaction()` in sync code, "
                "or build the manager on an AsyncEngine for `async with`"
            )
        self._plan = self._decide()
        if self._plan != _NESTED:
            return self._enter_without_io()
        session: AsyncSession = self._joined_session()  # type: ignore[assignment]
        try:
            savepoint = await session.begin_nested()
        except BaseException:
            self._leave(None)
            raise
        return self._new_record(self._joined_session(), savepoint).session

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._leave(exc)
        record = self._record
        if record is None or self._plan in (_JOIN, _NONE, _SUSPEND):
            return
        if self._plan == _NESTED:
            await self._end_savepoint_async(record, exc)
        else:
            # Shielded so a second cancellation cannot leave the connection mid-transaction.
            await asyncio.shield(self._end_root_async(record, exc))

    async def _end_savepoint_async(
        self, record: Transaction[SessionT], exc: BaseException | None
    ) -> None:
        savepoint = record.savepoint
        try:
            if self._wants_commit(exc) and not record.rollback_only:
                await savepoint.commit()
            elif exc is None:
                await savepoint.rollback()
                raise self._rollback_only_error(record)
            else:
                await _aquietly(savepoint.rollback)
        finally:
            record._active = False

    async def _end_root_async(
        self, record: Transaction[SessionT], exc: BaseException | None
    ) -> None:
        session: AsyncSession = record.session  # type: ignore[assignment]
        try:
            if not self._wants_commit(exc):
                await _aquietly(session.rollback)
            elif record._foreign_users or record.rollback_only:
                await session.rollback()
                if exc is None:
                    raise self._refused_error(record)
            else:
                session.sync_session.info[_COMMITTING] = True
                try:
                    await session.commit()
                except BaseException:
                    await _aquietly(session.rollback)
                    raise
        finally:
            record._active = False
            await session.close()


def _quietly(fn: Callable[[], Any]) -> None:
    # Used while another exception propagates: a failing rollback must not hide it.
    try:
        fn()
    except Exception:
        _log.warning("rollback failed while handling another exception", exc_info=True)


async def _aquietly(fn: Callable[[], Any]) -> None:
    try:
        await fn()
    except Exception:
        _log.warning("rollback failed while handling another exception", exc_info=True)
