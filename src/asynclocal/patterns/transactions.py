"""Alias of `asynclocal.transactions`, kept so existing imports keep working.

``from asynclocal.patterns.transactions import TransactionManager`` and
``from asynclocal.transactions import TransactionManager`` give the same objects.
Needs the ``sqlalchemy`` extra, as `asynclocal.transactions` does.
"""

from __future__ import annotations

from ..transactions import IllegalTransactionState as IllegalTransactionState
from ..transactions import (
    IllegalTransactionStateError,
    NoActiveTransactionError,
    NoTransactionManagerError,
    Propagation,
    Transaction,
    TransactionError,
    TransactionManager,
    TransactionRolledBackError,
    TransactionScope,
    current_session,
    get_default_manager,
    set_default_manager,
    transaction,
    transactional,
)
from ..transactions import NoActiveTransaction as NoActiveTransaction
from ..transactions import NoTransactionManager as NoTransactionManager
from ..transactions import TransactionRolledBack as TransactionRolledBack

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
