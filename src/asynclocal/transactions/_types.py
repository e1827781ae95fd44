"""Errors, propagation modes and the `Transaction` record of `asynclocal.transactions`."""

from __future__ import annotations

import enum
import threading
import weakref
from typing import Any, Generic, TypeVar

from ..errors import (
    IllegalTransactionState,
    NoActiveTransaction,
    NoTransactionManager,
    TransactionError,
    TransactionRolledBack,
)

__all__ = [
    "IllegalTransactionState",
    "NoActiveTransaction",
    "NoTransactionManager",
    "Propagation",
    "Transaction",
    "TransactionError",
    "TransactionRolledBack",
]

S = TypeVar("S")


class Propagation(str, enum.Enum):
    """How a `transaction()` block relates to the transaction already active (Spring's names)."""

    REQUIRED = "required"
    """Join the active transaction, or open one (the default)."""
    REQUIRES_NEW = "requires_new"
    """Always open an independent transaction on a new session; the outer one is untouched."""
    NESTED = "nested"
    """Open a savepoint in the active transaction (rolled back alone), or open one."""
    MANDATORY = "mandatory"
    """Join the active transaction; raise `NoActiveTransaction` when there is none."""
    NEVER = "never"
    """Run without a transaction; raise `IllegalTransactionState` when one is active."""
    SUPPORTS = "supports"
    """Join the active transaction, or run without one."""
    NOT_SUPPORTED = "not_supported"
    """Run without a transaction, hiding (suspending) the active one until the block ends."""

    @classmethod
    def parse(cls, value: Propagation | str) -> Propagation:
        """Accept a `Propagation` or its name/value in any case (``"requires_new"``).

        Raises:
            TypeError: `value` is neither a `Propagation` nor a str.
            ValueError: the string names no propagation mode.
        """
        if isinstance(value, Propagation):
            return value
        if not isinstance(value, str):
            raise TypeError(
                f"propagation must be a Propagation or its name, got {type(value).__name__} "
                f"{value!r:.40}"
            )
        key = value.strip().lower().replace("-", "_")
        for member in cls:
            if member.value == key:
                return member
        names = ", ".join(m.name for m in cls)
        raise ValueError(f"unknown propagation {value!r}; use one of {names}")


class Transaction(Generic[S]):
    """One transaction (or savepoint, or suspension) opened by a `transaction()` block.

    Visible through `TransactionManager.current_transaction()`. A `NESTED` block
    gets its own record sharing the session of the one it is nested in; a
    `NOT_SUPPORTED` block pushes a record without a session that hides the
    transaction it suspends.

    Attributes:
        session: the session, or None for a suspension.
        propagation: the mode of the block that opened it.
        outer: the record that was current when this one was opened, or None.
        request_id: the id of the request it was opened in (None outside a request).
    """

    __slots__ = (
        "_active",
        "_foreign_users",
        "_owner_task",
        "outer",
        "owner_thread",
        "propagation",
        "request_id",
        "rollback_only",
        "root",
        "savepoint",
        "session",
    )

    def __init__(
        self,
        session: S | None,
        propagation: Propagation,
        outer: Transaction[S] | None,
        *,
        root: Transaction[S] | None = None,
        savepoint: Any = None,
        owner_task: Any = None,
        request_id: str | None = None,
    ) -> None:
        self.session = session
        self.propagation = propagation
        self.outer = outer
        self.root: Transaction[S] = root if root is not None else self
        self.savepoint = savepoint
        self.request_id = request_id
        self.owner_thread = threading.get_ident()
        self._owner_task: weakref.ref[Any] | None = (
            weakref.ref(owner_task) if owner_task is not None else None
        )
        self.rollback_only = False
        self._active = True
        # Blocks entered on this transaction's session by tasks other than its owner.
        self._foreign_users = 0

    @property
    def is_active(self) -> bool:
        """True until the block that opened it ends (always False for a suspension)."""
        return self._active and self.session is not None

    @property
    def is_nested(self) -> bool:
        """True for a `NESTED` savepoint record."""
        return self.savepoint is not None

    @property
    def is_suspension(self) -> bool:
        """True for the record a `NOT_SUPPORTED` block pushes to hide the active transaction."""
        return self.session is None

    def owned_by(self, task: Any) -> bool:
        """True when `task` is the task that opened this transaction."""
        return self._owner_task is not None and self._owner_task() is task

    def set_rollback_only(self) -> None:
        """Make the block that owns this transaction roll back instead of committing.

        The owner's block then raises `TransactionRolledBack` if it ends normally.

        Raises:
            IllegalTransactionState: the transaction already ended or is a suspension.
        """
        if not self.is_active:
            raise IllegalTransactionState(
                "set_rollback_only() on a transaction that already ended or is suspended"
            )
        self.rollback_only = True

    def __repr__(self) -> str:
        state = "active" if self.is_active else ("suspension" if self.session is None else "ended")
        extra = ", rollback_only" if self.rollback_only else ""
        return (
            f"<Transaction {self.propagation.name} {state}{extra} "
            f"request_id={self.request_id!r} session={type(self.session).__name__}>"
        )
