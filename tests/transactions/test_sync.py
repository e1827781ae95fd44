"""Sync `Session` transactions on a SQLite file and a real PostgreSQL (psycopg)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert
from sqlalchemy.orm import Session

from asynclocal.request import RequestContext, request_storage
from asynclocal.threads import Thread
from asynclocal.transactions import (
    IllegalTransactionState,
    NoActiveTransaction,
    Propagation,
    TransactionRolledBack,
    current_session,
    set_default_manager,
    transaction,
    transactional,
)

from .conftest import Database, items


class Boom(Exception):
    pass


def write(db: Database, label: str) -> None:
    """Repository code: finds the session through the manager, never as an argument."""
    session = db.tm.current_session()
    session.execute(insert(items).values(request_id="r", label=label))


def test_required_commits_once_at_the_outermost_block(sync_db: Database) -> None:
    tm = sync_db.tm
    with tm.transaction() as outer:
        write(sync_db, "a")
        with tm.transaction(Propagation.REQUIRED) as inner:
            assert inner is outer
            write(sync_db, "b")
        # The inner block joined: nothing is committed until the outer block ends.
        assert sync_db.rows() == []
    assert sync_db.labels() == ["a", "b"]
    assert sync_db.open_transactions() == 0


def test_exception_rolls_back_and_propagates_unchanged(sync_db: Database) -> None:
    error = Boom("x")
    with pytest.raises(Boom) as caught, sync_db.tm.transaction():  # noqa: PT012
        write(sync_db, "a")
        raise error
    assert caught.value is error
    assert sync_db.rows() == []
    assert sync_db.open_transactions() == 0


def test_repository_three_calls_deep_uses_the_request_session(sync_db: Database) -> None:
    tm = sync_db.tm
    seen: list[Session] = []

    def repository(label: str) -> None:
        seen.append(tm.current_session())
        write(sync_db, label)

    def service(label: str) -> None:
        repository(label)
        repository(label + "-2")

    @tm.transactional
    def controller(label: str) -> str:
        service(label)
        return "done"

    ctx = RequestContext("req-deep")
    assert request_storage.run(ctx, controller, "x") == "done"
    assert sync_db.labels() == ["x", "x-2"]
    assert seen[0] is seen[1]
    assert sync_db.open_transactions() == 0


def test_transaction_records_its_request(sync_db: Database) -> None:
    tm = sync_db.tm

    def body() -> str | None:
        with tm.transaction():
            record = tm.current_transaction()
            assert record is not None
            return record.request_id

    assert request_storage.run(RequestContext("req-7"), body) == "req-7"
    assert body() is None


def test_requires_new_commits_independently_of_the_outer(sync_db: Database) -> None:
    tm = sync_db.tm
    with pytest.raises(Boom), tm.transaction() as outer:  # noqa: PT012
        with tm.transaction(Propagation.REQUIRES_NEW) as inner:
            assert inner is not outer
            assert tm.current_session() is inner
            write(sync_db, "audit")
        assert tm.current_session() is outer
        assert sync_db.labels() == ["audit"]
        write(sync_db, "order")
        raise Boom
    assert sync_db.labels() == ["audit"]
    assert sync_db.open_transactions() == 0


def test_requires_new_failure_leaves_the_outer_untouched(sync_db: Database) -> None:
    tm = sync_db.tm
    with tm.transaction():
        with pytest.raises(Boom), tm.transaction(Propagation.REQUIRES_NEW):  # noqa: PT012
            write(sync_db, "lost")
            raise Boom
        write(sync_db, "kept")
    assert sync_db.labels() == ["kept"]
    assert sync_db.open_transactions() == 0


def test_nested_rolls_back_only_its_savepoint(sync_db: Database) -> None:
    tm = sync_db.tm
    with tm.transaction() as outer:
        write(sync_db, "a")
        with pytest.raises(sa_exc.IntegrityError), tm.transaction(Propagation.NESTED) as inner:  # noqa: PT012
            assert inner is outer
            write(sync_db, "b")
            write(sync_db, "a")  # unique violation: PostgreSQL aborts all but the savepoint
        with tm.transaction(Propagation.NESTED):
            write(sync_db, "c")
        write(sync_db, "d")
    assert sync_db.labels() == ["a", "c", "d"]
    assert sync_db.open_transactions() == 0


def test_nested_work_rolls_back_with_the_outer(sync_db: Database) -> None:
    tm = sync_db.tm
    with pytest.raises(Boom), tm.transaction():  # noqa: PT012
        with tm.transaction(Propagation.NESTED):
            write(sync_db, "a")
        raise Boom
    assert sync_db.rows() == []


def test_nested_without_a_transaction_opens_one(sync_db: Database) -> None:
    with sync_db.tm.transaction(Propagation.NESTED) as session:
        assert session is not None
        write(sync_db, "a")
    assert sync_db.labels() == ["a"]


def test_mandatory(sync_db: Database) -> None:
    tm = sync_db.tm

    @tm.transactional(Propagation.MANDATORY)
    def repository() -> Session:
        write(sync_db, "m")
        return tm.current_session()

    with pytest.raises(NoActiveTransaction, match="MANDATORY"):
        repository()
    with tm.transaction() as outer:
        assert repository() is outer
    assert sync_db.labels() == ["m"]


def test_never(sync_db: Database) -> None:
    tm = sync_db.tm

    @tm.transactional(Propagation.NEVER)
    def report() -> bool:
        return tm.in_transaction()

    assert report() is False
    with tm.transaction():
        with pytest.raises(IllegalTransactionState, match="NEVER"):
            report()
        with tm.transaction(Propagation.NOT_SUPPORTED):
            assert report() is False


def test_supports(sync_db: Database) -> None:
    tm = sync_db.tm
    with tm.transaction(Propagation.SUPPORTS) as none:
        assert none is None
        with pytest.raises(NoActiveTransaction):
            tm.current_session()
    with tm.transaction() as outer, tm.transaction("supports") as joined:
        assert joined is outer


def test_not_supported_suspends_the_outer(sync_db: Database) -> None:
    tm = sync_db.tm
    with tm.transaction() as outer:
        # (SQLite has one writer: the outer block writes only after the independent one.)
        with tm.transaction(Propagation.NOT_SUPPORTED) as none:
            assert none is None
            with pytest.raises(NoActiveTransaction, match="suspended"):
                tm.current_session()
            # A REQUIRED block in a suspension opens its own transaction.
            with tm.transaction() as fresh:
                assert fresh is not outer
                write(sync_db, "independent")
            assert sync_db.labels() == ["independent"]
        assert tm.current_session() is outer
        write(sync_db, "outer")
    assert sync_db.labels() == ["independent", "outer"]


def test_joined_failure_marks_the_transaction_rollback_only(sync_db: Database) -> None:
    tm = sync_db.tm

    @tm.transactional
    def inner() -> None:
        write(sync_db, "inner")
        raise Boom

    with pytest.raises(TransactionRolledBack, match="rollback-only"), tm.transaction():  # noqa: PT012
        write(sync_db, "outer")
        with pytest.raises(Boom):
            inner()
    assert sync_db.rows() == []
    assert sync_db.open_transactions() == 0


def test_no_rollback_for_commits_and_still_raises(sync_db: Database) -> None:
    tm = sync_db.tm

    @tm.transactional(no_rollback_for=Boom)
    def work() -> None:
        write(sync_db, "kept")
        raise Boom

    with pytest.raises(Boom):
        work()
    assert sync_db.labels() == ["kept"]


def test_direct_commit_is_refused(sync_db: Database) -> None:
    with pytest.raises(IllegalTransactionState, match="commit"), sync_db.tm.transaction():  # noqa: PT012
        write(sync_db, "a")
        sync_db.tm.current_session().commit()
    assert sync_db.rows() == []
    assert sync_db.open_transactions() == 0


def test_hand_made_savepoints_still_work(sync_db: Database) -> None:
    with sync_db.tm.transaction() as session:
        assert session is not None
        savepoint = session.begin_nested()
        write(sync_db, "a")
        savepoint.commit()
        savepoint = session.begin_nested()
        write(sync_db, "b")
        savepoint.rollback()
    assert sync_db.labels() == ["a"]


def test_other_thread_cannot_join_but_may_open_its_own(sync_db: Database) -> None:
    tm = sync_db.tm
    results: dict[str, Any] = {}

    def in_thread() -> None:
        try:
            tm.current_session()
        except IllegalTransactionState as exc:
            results["join"] = exc
        with tm.transaction(Propagation.REQUIRES_NEW):
            write(sync_db, "thread")

    with tm.transaction() as outer:
        worker = Thread(target=in_thread)  # carries the context into the thread
        worker.start()
        worker.join(10)
        assert tm.current_session() is outer
    assert "thread-safe" in str(results["join"])
    assert sync_db.labels() == ["thread"]
    assert sync_db.open_transactions() == 0


def test_module_level_helpers_use_the_default_manager(sync_db: Database) -> None:
    @transactional
    def service() -> None:
        current_session().execute(insert(items).values(request_id="r", label="default"))

    set_default_manager(sync_db.tm)
    service()
    with transaction(manager=sync_db.tm) as session:
        assert session is current_session()
        with transaction(Propagation.MANDATORY) as joined:
            assert joined is session
    assert sync_db.labels() == ["default"]


def test_nothing_stays_open_after_many_mixed_blocks(sync_db: Database) -> None:
    tm = sync_db.tm
    modes = [m for m in Propagation if m is not Propagation.NEVER]
    expected = []
    for i in range(30):
        mode = modes[i % len(modes)]
        with pytest.raises(Boom) if i % 3 == 0 else _no_error(), tm.transaction():
            with tm.transaction(mode):
                if tm.in_transaction():
                    write(sync_db, f"row-{i}")
                    if i % 3:
                        expected.append(f"row-{i}")
            if i % 3 == 0:
                raise Boom
        assert tm.current_transaction() is None
    assert sync_db.labels() == expected
    assert len(expected) > 10
    assert sync_db.open_transactions() == 0


class _no_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
