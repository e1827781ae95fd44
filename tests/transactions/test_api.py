"""Input validation, error messages and the missing-extra ImportError."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from asynclocal.transactions import (
    IllegalTransactionState,
    NoActiveTransaction,
    NoTransactionManager,
    Propagation,
    TransactionManager,
    current_session,
    get_default_manager,
    set_default_manager,
    transactional,
)


@pytest.fixture
def tm(tmp_path: Path) -> Iterator[TransactionManager]:  # type: ignore[type-arg]
    engine = create_engine(f"sqlite:///{tmp_path / 'api.db'}")
    yield TransactionManager(engine)
    set_default_manager(None)
    engine.dispose()


def test_missing_sqlalchemy_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "try:\n    import asynclocal.transactions\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'asynclocal[sqlalchemy]'" in out.stdout


def test_the_patterns_path_is_an_alias_of_the_same_objects() -> None:
    import asynclocal.patterns.transactions as old
    import asynclocal.transactions as new

    assert old.__all__ == new.__all__
    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name), name


def test_core_does_not_import_sqlalchemy() -> None:
    code = "import asynclocal, sys; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_bind_kinds(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'k.db'}")
    aengine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    assert not TransactionManager(engine).is_async
    assert not TransactionManager(sessionmaker(engine)).is_async
    assert TransactionManager(aengine).is_async
    assert TransactionManager(async_sessionmaker(aengine)).is_async
    with pytest.raises(TypeError, match="create_engine"):
        TransactionManager("sqlite://")  # type: ignore[call-overload]
    engine.dispose()


def test_propagation_parsing() -> None:
    assert Propagation.parse("requires_new") is Propagation.REQUIRES_NEW
    assert Propagation.parse("NOT-SUPPORTED") is Propagation.NOT_SUPPORTED
    with pytest.raises(ValueError, match="REQUIRES_NEW"):
        Propagation.parse("sometimes")
    with pytest.raises(TypeError):
        Propagation.parse(3)  # type: ignore[arg-type]


def test_decorator_validation(tm: TransactionManager) -> None:  # type: ignore[type-arg]
    with pytest.raises(TypeError, match="async function"):

        @tm.transactional
        async def wrong_kind() -> None:
            pass

    with pytest.raises(TypeError, match="yields"):

        @tm.transactional
        def rows() -> Iterator[int]:
            yield 1

    with pytest.raises(TypeError, match="yields"):

        @transactional(manager=tm)
        async def arows() -> AsyncIterator[int]:
            yield 1

    with pytest.raises(TypeError, match="no_rollback_for"):
        tm.transaction(no_rollback_for=(ValueError, "x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown propagation"):
        tm.transactional("always")


def test_block_is_not_reusable(tm: TransactionManager) -> None:  # type: ignore[type-arg]
    block = tm.transaction()
    with block:
        pass
    with pytest.raises(IllegalTransactionState, match="already entered"), block:
        pass


async def test_async_with_on_a_sync_manager_is_refused(
    tm: TransactionManager,  # type: ignore[type-arg]
) -> None:
    with pytest.raises(TypeError, match="`with transaction"):
        async with tm.transaction():
            pass


def test_current_session_outside_a_transaction(tm: TransactionManager) -> None:  # type: ignore[type-arg]
    with pytest.raises(NoActiveTransaction, match="@transactional"):
        tm.current_session()
    assert not tm.in_transaction()
    assert tm.current_transaction() is None


def test_default_manager_resolution(tm: TransactionManager) -> None:  # type: ignore[type-arg]
    other = TransactionManager(sessionmaker())
    with pytest.raises(NoTransactionManager, match="set_default_manager"):
        get_default_manager()
    set_default_manager(tm)
    assert get_default_manager() is tm
    with pytest.raises(NoActiveTransaction):
        current_session()
    with pytest.raises(TypeError):
        set_default_manager(object())  # type: ignore[arg-type]
    del other
