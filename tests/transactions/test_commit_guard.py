"""The guard against hand-made commits holds for every new sessionmaker.

SQLAlchemy's event registry is keyed by the id() of the sessionmaker's Session class;
once such a class is collected, a new one at the same address looked already guarded,
so a manager built on it let `session.commit()` through (seen on CPython 3.13).
"""

from __future__ import annotations

import gc

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from asynclocal.transactions import IllegalTransactionState, TransactionManager


@pytest.mark.parametrize("bind", ["engine", "sessionmaker"])
def test_every_new_manager_refuses_direct_commits(bind: str) -> None:
    engine = create_engine("sqlite://")
    try:
        for i in range(20):
            factory = sessionmaker(engine) if bind == "sessionmaker" else engine
            tm = TransactionManager(factory, name=f"guard-{i}")
            with pytest.raises(IllegalTransactionState, match="commit"), tm.transaction():
                tm.current_session().commit()
            del tm, factory
            gc.collect()
    finally:
        engine.dispose()


def test_one_sessionmaker_shared_by_two_managers_is_guarded_once() -> None:
    engine = create_engine("sqlite://")
    factory = sessionmaker(engine)
    calls = 0
    try:
        first = TransactionManager(factory, name="guard-a")
        second = TransactionManager(factory, name="guard-b")
        for tm in (first, second):
            with pytest.raises(IllegalTransactionState), tm.transaction():
                tm.current_session().commit()
            calls += 1
        with first.transaction() as session:  # the block's own commit is not refused
            assert session is not None
    finally:
        engine.dispose()
    assert calls == 2
