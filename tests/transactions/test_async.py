"""`AsyncSession` transactions on aiosqlite and a real PostgreSQL (asyncpg), with tasks."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from asynclocal.request import RequestContext, request_storage
from asynclocal.transactions import (
    IllegalTransactionState,
    NoActiveTransaction,
    Propagation,
    TransactionRolledBack,
)

from .conftest import Database, items


class Boom(Exception):
    pass


async def write(db: Database, label: str) -> None:
    session: AsyncSession = db.tm.current_session()
    await session.execute(insert(items).values(request_id="r", label=label))


async def test_required_joins_and_commits_at_the_outermost_block(async_db: Database) -> None:
    tm = async_db.tm

    async def repository(label: str) -> AsyncSession:
        await asyncio.sleep(0)
        await write(async_db, label)
        return tm.current_session()

    @tm.transactional
    async def service() -> AsyncSession:
        return await repository("b")

    @tm.transactional
    async def controller() -> tuple[AsyncSession, AsyncSession]:
        await write(async_db, "a")
        inner = await service()
        assert async_db.rows() == []
        return tm.current_session(), inner

    outer, inner = await request_storage.run(RequestContext("req-a"), controller)
    assert outer is inner
    assert async_db.labels() == ["a", "b"]
    assert async_db.open_transactions() == 0


async def test_exception_rolls_back(async_db: Database) -> None:
    with pytest.raises(Boom):  # noqa: PT012
        async with async_db.tm.transaction():
            await write(async_db, "a")
            raise Boom
    assert async_db.rows() == []
    assert async_db.open_transactions() == 0


async def test_sync_with_on_an_async_manager_is_refused(async_db: Database) -> None:
    with pytest.raises(TypeError, match="async with"), async_db.tm.transaction():
        pass


async def test_requires_new_and_nested(async_db: Database) -> None:
    tm = async_db.tm
    with pytest.raises(Boom):  # noqa: PT012
        async with tm.transaction() as outer:
            async with tm.transaction(Propagation.REQUIRES_NEW) as audit:
                assert audit is not outer
                await write(async_db, "audit")
            await write(async_db, "a")
            with pytest.raises(sa_exc.IntegrityError):
                async with tm.transaction(Propagation.NESTED):
                    await write(async_db, "a")
            async with tm.transaction(Propagation.NESTED) as nested:
                assert nested is outer
                await write(async_db, "b")
            assert (await outer.execute(text("SELECT count(*) FROM items"))).scalar_one() == 3
            raise Boom
    assert async_db.labels() == ["audit"]
    assert async_db.open_transactions() == 0


async def test_nested_savepoint_kept_when_outer_commits(async_db: Database) -> None:
    tm = async_db.tm
    async with tm.transaction():
        await write(async_db, "a")
        with pytest.raises(Boom):  # noqa: PT012
            async with tm.transaction(Propagation.NESTED):
                await write(async_db, "gone")
                raise Boom
        async with tm.transaction(Propagation.NESTED):
            await write(async_db, "b")
    assert async_db.labels() == ["a", "b"]


async def test_mandatory_never_supports_not_supported(async_db: Database) -> None:
    tm = async_db.tm
    with pytest.raises(NoActiveTransaction):
        async with tm.transaction(Propagation.MANDATORY):
            pass
    async with tm.transaction(Propagation.SUPPORTS) as none:
        assert none is None
    async with tm.transaction(Propagation.NEVER) as none:
        assert none is None
    async with tm.transaction() as outer:
        async with tm.transaction(Propagation.MANDATORY) as joined:
            assert joined is outer
        async with tm.transaction(Propagation.SUPPORTS) as joined:
            assert joined is outer
        with pytest.raises(IllegalTransactionState):
            async with tm.transaction(Propagation.NEVER):
                pass
        async with tm.transaction(Propagation.NOT_SUPPORTED):
            assert not tm.in_transaction()
            with pytest.raises(NoActiveTransaction):
                tm.current_session()
            async with tm.transaction(Propagation.NEVER):
                pass
        assert tm.current_session() is outer
    assert async_db.open_transactions() == 0


async def test_joined_failure_caught_by_the_caller_rolls_back(async_db: Database) -> None:
    tm = async_db.tm

    @tm.transactional
    async def inner() -> None:
        await write(async_db, "inner")
        raise Boom

    with pytest.raises(TransactionRolledBack):  # noqa: PT012
        async with tm.transaction():
            await write(async_db, "outer")
            with pytest.raises(Boom):
                await inner()
    assert async_db.rows() == []


async def test_child_task_joins_but_only_the_owner_commits(async_db: Database) -> None:
    tm = async_db.tm

    @tm.transactional
    async def child(label: str) -> AsyncSession:
        await write(async_db, label)
        return tm.current_session()

    with pytest.raises(Boom):  # noqa: PT012
        async with tm.transaction() as outer:
            # wait_for runs the coroutine in a new task on Python < 3.12.
            joined = await asyncio.wait_for(child("child"), 5)
            assert joined is outer
            assert await asyncio.create_task(child("child-2")) is outer
            assert async_db.rows() == []  # the child's block ended: nothing committed
            raise Boom
    assert async_db.rows() == []  # the owner's rollback covers the children's work
    async with tm.transaction():
        await asyncio.create_task(child("kept"))
    assert async_db.labels() == ["kept"]


async def test_child_task_still_inside_when_owner_ends(async_db: Database) -> None:
    tm = async_db.tm
    entered = asyncio.Event()
    release = asyncio.Event()

    async def straggler() -> None:
        async with tm.transaction():
            await write(async_db, "late")
            entered.set()
            await release.wait()

    with pytest.raises(IllegalTransactionState, match="still using"):  # noqa: PT012
        async with tm.transaction():
            task = asyncio.create_task(straggler())
            await entered.wait()
    release.set()
    await task
    assert async_db.rows() == []
    assert async_db.open_transactions() == 0


async def test_task_outliving_the_block_cannot_use_it(async_db: Database) -> None:
    tm = async_db.tm
    go = asyncio.Event()

    async def late() -> None:
        await go.wait()
        tm.current_session()

    async with tm.transaction():
        task = asyncio.create_task(late())
    go.set()
    with pytest.raises(IllegalTransactionState, match="already ended"):
        await task


async def test_concurrent_children_with_requires_new_get_own_sessions(async_db: Database) -> None:
    if async_db.kind == "aiosqlite":
        pytest.skip("SQLite has a single writer: concurrent write transactions would lock")
    tm = async_db.tm

    @tm.transactional(Propagation.REQUIRES_NEW)
    async def child(i: int) -> int:
        await asyncio.sleep(0.001 * (i % 3))
        await write(async_db, f"c{i}")
        return id(tm.current_session())

    async with tm.transaction() as outer:
        ids = await asyncio.gather(*(child(i) for i in range(5)))
        assert tm.current_session() is outer
    assert len(set(ids)) == 5
    assert id(outer) not in ids
    assert sorted(async_db.labels()) == [f"c{i}" for i in range(5)]
    assert async_db.open_transactions() == 0


async def test_cancelled_request_rolls_back_and_frees_the_connection(async_db: Database) -> None:
    tm = async_db.tm
    started = asyncio.Event()

    @tm.transactional
    async def slow() -> None:
        await write(async_db, "cancelled")
        started.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(slow())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert async_db.rows() == []
    assert async_db.open_transactions() == 0
