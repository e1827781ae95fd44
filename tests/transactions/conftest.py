"""Fixtures for the transaction tests: SQLite files and a real PostgreSQL server.

The PostgreSQL server is started once per test session from the binaries on
PATH or in /usr/lib/postgresql/*/bin (scripts/_setup.sh installs them), in a
temporary data directory, listening only on 127.0.0.1, and stopped at the end.
As root it runs as the unprivileged ``postgres`` user (PostgreSQL refuses root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from asynclocal.transactions import TransactionManager, set_default_manager
from tests.support.servers import free_port

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("label", String(100), nullable=False, unique=True),
)

PG_START_TIMEOUT = 45


# -- PostgreSQL server ---------------------------------------------------------------


def _pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    pytest.fail(
        f"PostgreSQL binary {name!r} not found on PATH or in /usr/lib/postgresql/*/bin; "
        "run scripts/test.sh (it installs postgresql with apt-get) or install it yourself",
        pytrace=False,
    )


def _run_as() -> dict[str, Any]:
    """subprocess kwargs that drop root to an unprivileged user (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    pytest.fail("running as root, and no 'postgres' or 'nobody' user to run PostgreSQL as")


@dataclass
class PostgresServer:
    port: int
    database: str

    def url(self, driver: str) -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{self.database}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    as_user = _run_as()
    base = Path(tempfile.mkdtemp(prefix="asynclocal-pg-"))
    if as_user:
        os.chown(base, as_user["user"], as_user["group"])
    data, log = base / "data", base / "server.log"
    port = free_port()
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def run(args: list[str], what: str, timeout: float) -> None:
        try:
            done = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout, env=env, **as_user
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"PostgreSQL {what} took more than {timeout}s", pytrace=False)
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(
                f"PostgreSQL {what} failed ({done.returncode}): {done.stderr.strip()}\n{tail}",
                pytrace=False,
            )

    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    try:
        run(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            "initdb",
            60,
        )
        start = [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", str(PG_START_TIMEOUT)]
        run([*start, "-o", options, "start"], "start", PG_START_TIMEOUT + 5)
        try:
            import psycopg

            with psycopg.connect(
                host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
            ) as conn:
                conn.execute("CREATE DATABASE asynclocal_tx")
            yield PostgresServer(port, "asynclocal_tx")
        finally:
            stop = [pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "20", "stop"]
            if subprocess.run(stop, capture_output=True, env=env, **as_user).returncode != 0:
                subprocess.run(
                    [pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                    capture_output=True,
                    env=env,
                    **as_user,
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- databases -----------------------------------------------------------------------


def _sqlite_savepoint_recipe(engine: Engine, begin: str = "BEGIN") -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; SQLAlchemy's documented recipe.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


@dataclass
class Database:
    """A database with the `items` table, a manager on it, and read-back helpers."""

    kind: str
    engine: Any
    reader: Engine
    tm: TransactionManager[Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_postgres(self) -> bool:
        return self.kind in ("postgres", "asyncpg")

    def rows(self) -> list[tuple[str, str]]:
        """Committed (request_id, label) rows, read on a separate connection."""
        with self.reader.connect() as conn:
            result = conn.execute(select(items.c.request_id, items.c.label).order_by(items.c.id))
            return [(r, label) for r, label in result]

    def labels(self) -> list[str]:
        return [label for _, label in self.rows()]

    def open_transactions(self) -> int:
        """Connections checked out of the pool, plus (PostgreSQL) backends idle in transaction."""
        pool = self.engine.sync_engine.pool if isinstance(self.engine, AsyncEngine) else None
        out: int = (pool or self.engine.pool).checkedout()
        if self.is_postgres:
            with self.reader.connect() as conn:
                out += conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
        return out


def _reset_pg_tables(server: PostgresServer) -> Engine:
    reader = create_engine(server.url("psycopg"), poolclass=_null_pool())
    with reader.begin() as conn:
        metadata.drop_all(conn)
        metadata.create_all(conn)
    return reader


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sync_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A sync engine (SQLite file or PostgreSQL via psycopg) and a TransactionManager on it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tx.db'}"
        engine = create_engine(url, connect_args={"timeout": 2})
        _sqlite_savepoint_recipe(engine)
        reader = create_engine(url, poolclass=_null_pool())
        metadata.create_all(engine)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        reader = _reset_pg_tables(server)
        engine = create_engine(server.url("psycopg"), pool_size=5, max_overflow=20)
    db = Database(request.param, engine, reader, TransactionManager(engine))
    try:
        yield db
    finally:
        set_default_manager(None)
        engine.dispose()
        reader.dispose()


@pytest.fixture(params=["aiosqlite", pytest.param("asyncpg", marks=pytest.mark.postgres)])
async def async_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An async engine (aiosqlite file or PostgreSQL via asyncpg) and a TransactionManager.

    The indirect parameter "aiosqlite-immediate" starts SQLite transactions with
    BEGIN IMMEDIATE, so concurrent writers queue instead of failing to upgrade a lock.
    """
    if request.param.startswith("aiosqlite"):
        path = tmp_path / "tx.db"
        immediate = request.param == "aiosqlite-immediate"
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 30 if immediate else 5}
        )
        _sqlite_savepoint_recipe(engine.sync_engine, "BEGIN IMMEDIATE" if immediate else "BEGIN")
        reader = create_engine(f"sqlite:///{path}", poolclass=_null_pool())
        metadata.create_all(reader)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        reader = _reset_pg_tables(server)
        engine = create_async_engine(server.url("asyncpg"), pool_size=10, max_overflow=60)
    kind = "aiosqlite" if request.param.startswith("aiosqlite") else request.param
    db = Database(kind, engine, reader, TransactionManager(engine))
    try:
        yield db
    finally:
        set_default_manager(None)
        await engine.dispose()
        reader.dispose()
