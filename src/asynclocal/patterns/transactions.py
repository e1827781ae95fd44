"""Alias of `asynclocal.transactions`, kept so existing imports keep working.

``from asynclocal.patterns.transactions import TransactionManager`` and
``from asynclocal.transactions import TransactionManager`` give the same objects.
Needs the ``sqlalchemy`` extra, as `asynclocal.transactions` does.
"""

from __future__ import annotations

from ..transactions import (
    IllegalTransactionState,
    NoActiveTransaction,
    NoTransactionManager,
    Propagation,
    Transaction,
    TransactionError,
    TransactionManager,
    TransactionRolledBack,
    TransactionScope,
    current_session,
    get_default_manager,
    set_default_manager,
    transaction,
    transactional,
)

__all__ = [
    "IllegalTransactionState",
    "NoActiveTransaction",
    "NoTransactionManager",
    "Propagation",
    "Transaction",
    "TransactionError",
    "TransactionManager",
    "TransactionRolledBack",
    "TransactionScope",
    "current_session",
    "get_default_manager",
    "set_default_manager",
    "transaction",
    "transactional",
]
