"""Sync transactions through Flask under waitress (reused threads) never share a session."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify
from sqlalchemy import event, text

from asynclocal import current_request
from asynclocal.transactions import (
    TransactionManager,
)
from asynclocal.web.flask import RequestContextExtension
from tests.support.servers import run_waitress
from tests.transactions._orders_app import Conflict

pytestmark = pytest.mark.timeout(60)


# --- sync transactions through Flask under waitress (reused threads) --------------------------


def test_sync_transactions_through_flask_never_share_a_session(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'sync.db'}", connect_args={"timeout": 20})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE rows (request_id TEXT, session_id INTEGER)"))
    tm: TransactionManager[Any] = TransactionManager(engine)

    def repository() -> int:
        session = tm.current_session()
        session.execute(
            text("INSERT INTO rows VALUES (:r, :s)"),
            {"r": current_request().request_id, "s": id(session)},
        )
        return id(session)

    @tm.transactional
    def handle(fail: bool) -> int:
        sid = repository()
        time.sleep(random.random() * 0.005)
        assert repository() == sid  # the same session, three calls deep or not
        if fail:
            raise Conflict()
        return sid

    app = Flask("tx_sync")

    @app.post("/w")
    def w() -> Any:
        from flask import request

        in_tx_before = tm.in_transaction()
        try:
            handle(request.args.get("fail") == "1")
        except Conflict:
            return jsonify({"before": in_tx_before}), 409
        return jsonify({"before": in_tx_before})

    RequestContextExtension(app)
    plan = [i % 4 == 0 for i in range(24)]
    with run_waitress(app, threads=4) as base:

        def call(fail: bool) -> tuple[bool, httpx.Response]:
            return fail, httpx.post(f"{base}/w", params={"fail": int(fail)}, timeout=30)

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, plan))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT request_id, count(*) FROM rows GROUP BY request_id"))
        per_request = dict(rows.all())
    assert engine.pool.checkedout() == 0
    engine.dispose()
    for fail, r in results:
        assert r.json() == {"before": False}  # a reused thread never sees an old transaction
        rid = r.headers["x-request-id"]
        if fail:
            assert r.status_code == 409
            assert rid not in per_request
        else:
            assert r.status_code == 200
            assert per_request[rid] == 2
