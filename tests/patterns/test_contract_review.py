"""External review of the patterns contract, written from docs/patterns.md and
docs/transactions.md alone: real servers on 127.0.0.1, a real SQLite database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from aiohttp import web
from flask import Flask, jsonify
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import asynclocal.threads
from asynclocal import RequestContext, current_request, request_storage, with_request_context
from asynclocal.patterns import RequestScope, run_with_context
from asynclocal.patterns.auth import ContextBearerAuth, TokenRefreshError, refresh_count
from asynclocal.patterns.rbac import Principal, requires
from asynclocal.patterns.scope import ScopeNotActive
from asynclocal.patterns.timing import timed
from asynclocal.patterns.transactions import (
    NoActiveTransaction,
    Propagation,
    TransactionManager,
)
from asynclocal.web.aiohttp import setup as setup_aiohttp
from asynclocal.web.flask import RequestContextExtension
from asynclocal.web.starlette import install as install_starlette
from asynclocal.web.wsgi import RequestContextMiddleware as WsgiMiddleware
from tests.support.servers import run_aiohttp, run_uvicorn, run_waitress

pytestmark = pytest.mark.timeout(60)


# --- a real token server and API server -----------------------------------------------------


class TokenWorld:
    """Issues `at-<user>-<n>` for refresh token `rt-<user>`; the API accepts only issued ones."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.refreshes: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.valid: dict[str, str] = {}
        self.revoked = {"rt-mallory"}

    def token_app(self) -> Starlette:
        async def token(request: Request) -> Response:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            rt = form.get("refresh_token", "")
            with self.lock:
                self.attempts[rt] += 1
            await asyncio.sleep(0.05)  # slow enough that concurrent calls overlap
            if form.get("grant_type") != "refresh_token" or not rt.startswith("rt-") or (
                rt in self.revoked
            ):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            user = rt[3:]
            with self.lock:
                self.refreshes[user] += 1
                at = f"at-{user}-{self.refreshes[user]}"
                self.valid[at] = user
            return JSONResponse({"access_token": at, "token_type": "Bearer"})

        return Starlette(routes=[Route("/token", token, methods=["POST"])])

    def api_app(self) -> Starlette:
        async def me(request: Request) -> Response:
            await asyncio.sleep(random.random() * 0.01)
            auth = request.headers.get("authorization", "")
            user = self.valid.get(auth[7:]) if auth.startswith("Bearer ") else None
            if user is None:
                return JSONResponse({"error": "expired"}, status_code=401)
            return JSONResponse({"user": user, "token": auth[7:]})

        return Starlette(routes=[Route("/me", me)])


@pytest.fixture(scope="module")
def tokens() -> Iterator[tuple[TokenWorld, str, str]]:
    world = TokenWorld()
    with run_uvicorn(world.token_app()) as token_url, run_uvicorn(world.api_app()) as api_url:
        yield world, f"{token_url}/token", api_url


def _request_with_tokens(user: str) -> RequestContext:
    ctx = RequestContext(f"req-{user}")
    ctx.user = {"id": user}
    ctx.access_token = f"expired-{user}"
    ctx.refresh_token = f"rt-{user}"
    return ctx


async def test_twenty_concurrent_calls_in_one_request_refresh_once(
    tokens: tuple[TokenWorld, str, str],
) -> None:
    world, token_url, api_url = tokens
    auth = ContextBearerAuth(token_url=token_url)
    async with httpx.AsyncClient(base_url=api_url, auth=auth) as api:

        async def handler() -> tuple[list[httpx.Response], int, str | None]:
            answers = await asyncio.gather(*(api.get("/me") for _ in range(20)))
            later = await api.get("/me")  # a later call uses the new token directly
            return [*answers, later], refresh_count(), current_request().access_token

        ctx = _request_with_tokens("solo")
        answers, count, token = await request_storage.run(ctx, handler)
    await auth.aclose()
    assert [r.status_code for r in answers] == [200] * 21
    assert {r.json()["user"] for r in answers} == {"solo"}
    assert count == 1
    assert world.refreshes["solo"] == 1
    assert token == "at-solo-1"
    assert ctx.access_token == "at-solo-1"


async def test_ten_concurrent_requests_refresh_once_each(
    tokens: tuple[TokenWorld, str, str],
) -> None:
    world, token_url, api_url = tokens
    users = [f"u{i}" for i in range(10)]
    auth = ContextBearerAuth(token_url=token_url)
    async with httpx.AsyncClient(base_url=api_url, auth=auth) as api:

        async def handler() -> tuple[str, list[dict[str, Any]], int]:
            await asyncio.sleep(random.random() * 0.02)
            answers = await asyncio.gather(*(api.get("/me") for _ in range(3)))
            return current_request().user["id"], [r.json() for r in answers], refresh_count()

        results = await asyncio.gather(
            *(request_storage.run(_request_with_tokens(u), handler) for u in users)
        )
    await auth.aclose()
    for user, answers, count in results:
        assert count == 1
        assert {a["user"] for a in answers} == {user}
        assert {a["token"] for a in answers} == {f"at-{user}-1"}
    assert sum(world.refreshes[u] for u in users) == 10


def test_sync_client_concurrent_calls_refresh_once(tokens: tuple[TokenWorld, str, str]) -> None:
    world, token_url, api_url = tokens
    auth = ContextBearerAuth(token_url=token_url)
    with httpx.Client(base_url=api_url, auth=auth) as api:

        def handler() -> tuple[list[int], int]:
            with asynclocal.threads.ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(lambda _: api.get("/me").status_code, range(20)))
            return codes, refresh_count()

        codes, count = request_storage.run(_request_with_tokens("sync"), handler)
    auth.close()
    assert codes == [200] * 20
    assert count == 1
    assert world.refreshes["sync"] == 1


async def test_failed_refresh_raises_for_every_waiting_call(
    tokens: tuple[TokenWorld, str, str],
) -> None:
    world, token_url, api_url = tokens
    auth = ContextBearerAuth(token_url=token_url)
    async with httpx.AsyncClient(base_url=api_url, auth=auth) as api:

        async def handler() -> list[BaseException | httpx.Response]:
            return await asyncio.gather(*(api.get("/me") for _ in range(5)),
                                        return_exceptions=True)

        results = await request_storage.run(_request_with_tokens("mallory"), handler)
    await auth.aclose()
    assert all(isinstance(r, TokenRefreshError) for r in results), results
    assert all(r.status_code == 401 for r in results if isinstance(r, TokenRefreshError))
    assert world.attempts["rt-mallory"] == 1  # the waiting calls did not try again


# --- RBAC through Flask and aiohttp: 403, never 500 -------------------------------------------


class Room:
    def __init__(self, created_by: str) -> None:
        self.created_by = created_by
        self.name = "room"


def _created_the_room(me: Principal, room: Room, new_name: str) -> bool:
    return room.created_by == me.id


USERS: dict[str, dict[str, Any]] = {
    "alice": {"id": "alice", "roles": ["agent"]},
    "bob": {"id": "bob", "roles": ["agent"]},
    "carol": {"id": "carol", "roles": ["viewer"]},
}
EXPECTED = {"alice": 200, "bob": 403, "carol": 403, "": 401}


def _load_user(ctx: RequestContext) -> None:
    name = ctx.headers.get("x-user", "")
    if name:
        ctx.user = USERS[name]


def _check_rbac(base: str) -> None:
    plan = [name for name in EXPECTED for _ in range(8)]
    random.shuffle(plan)

    def call(name: str) -> tuple[str, httpx.Response]:
        headers = {"x-user": name} if name else {}
        return name, httpx.post(f"{base}/rooms/r1/rename", headers=headers, timeout=10)

    with ThreadPoolExecutor(8) as pool:
        for name, r in pool.map(call, plan):
            assert r.status_code == EXPECTED[name], (name, r.status_code, r.text)
            assert "x-request-id" in r.headers
            if r.status_code == 403:
                assert "created" not in r.text
                assert "agent" not in r.text
            if r.status_code == 200:
                assert r.json() == {"renamed_by": "alice"}


def test_requires_through_flask_gives_403(tmp_path: Path) -> None:
    rooms = {"r1": Room("alice")}

    @requires("agent", policy=_created_the_room)
    def rename_room(room: Room, new_name: str) -> str:
        room.name = new_name
        return current_request().user_id or ""

    app = Flask("review_rbac")

    @app.post("/rooms/<rid>/rename")
    def rename(rid: str) -> Any:
        return jsonify({"renamed_by": rename_room(rooms[rid], "new")})

    RequestContextExtension(app, on_request=_load_user)
    with run_waitress(app) as base:
        _check_rbac(base)


def test_requires_through_aiohttp_gives_403() -> None:
    rooms = {"r1": Room("alice")}

    @requires("agent", policy=_created_the_room)
    async def rename_room(room: Room, new_name: str) -> str:
        await asyncio.sleep(0)
        return current_request().user_id or ""

    async def rename(request: web.Request) -> web.Response:
        return web.json_response(
            {"renamed_by": await rename_room(rooms[request.match_info["rid"]], "n")})

    app = web.Application()
    setup_aiohttp(app, on_request=_load_user)
    app.router.add_post("/rooms/{rid}/rename", rename)
    with run_aiohttp(app) as base:
        _check_rbac(base)


# --- @timed: Server-Timing through Flask and bare WSGI ----------------------------------------


@timed("repository")
def _repository() -> None:
    time.sleep(0.001)


@timed("service")
def _service(n: int) -> None:
    for _ in range(n):
        _repository()


@timed("controller")
def _controller(n: int) -> str:
    _service(n)
    return current_request().request_id


def _timing_entries(header: str) -> list[str]:
    return [entry.split(";")[0].strip() for entry in header.split(",")]


def _check_timing(base: str, path: str) -> None:
    def call(n: int) -> tuple[int, httpx.Response]:
        return n, httpx.get(f"{base}{path}", params={"n": n}, timeout=10)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, [random.randint(1, 5) for _ in range(24)]))
    for n, r in results:
        assert r.status_code == 200
        names = _timing_entries(r.headers["server-timing"])
        assert names[0] == "controller"
        assert names[-1] == "total"
        assert names.count("repository") == n
        assert names.count("service") == 1
        assert 'desc="controller>service>repository"' in r.headers["server-timing"]
        assert r.text == r.headers["x-request-id"]


def test_timed_server_timing_through_flask(caplog: pytest.LogCaptureFixture) -> None:
    app = Flask("review_timing")

    @app.get("/t")
    def t() -> Any:
        from flask import request

        return _controller(int(request.args["n"]))

    RequestContextExtension(app)
    with caplog.at_level(logging.INFO, logger="asynclocal.timing"), run_waitress(app) as base:
        _check_timing(base, "/t")
    summaries = [r for r in caplog.records if r.name == "asynclocal.timing"]
    assert len(summaries) == 24
    assert len({getattr(r, "request_id", None) for r in summaries}) == 24


def test_timed_server_timing_through_bare_wsgi() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        n = int(parse_qs(environ["QUERY_STRING"])["n"][0])
        body = _controller(n).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    with run_waitress(WsgiMiddleware(app)) as base:
        _check_timing(base, "/")


# --- transactions through a real Starlette app on SQLite -------------------------------------


class Conflict(Exception):
    pass


@pytest.fixture
def tx_app(tmp_path: Path) -> Iterator[tuple[Starlette, TransactionManager[Any], Any]]:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'review.db'}", connect_args={"timeout": 20}
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    tm: TransactionManager[Any] = TransactionManager(engine)

    async def save_row(table: str, item: str) -> None:  # the repository: no session argument
        rid = current_request().request_id
        await tm.current_session().execute(
            text(f"INSERT INTO {table} (request_id, item) VALUES (:r, :i)"), {"r": rid, "i": item})

    async def place_order(item: str) -> None:  # the service
        await save_row("orders", item)

    @tm.transactional(Propagation.REQUIRES_NEW)
    async def write_audit(item: str) -> None:
        await save_row("audit", item)

    @tm.transactional
    async def checkout(item: str, fail: bool, nested_fail: bool) -> str:
        await write_audit(item)  # independent: kept even if checkout rolls back
        await place_order(item)
        try:
            async with tm.transaction(Propagation.NESTED):
                await place_order(f"{item}-extra")
                if nested_fail:
                    raise ValueError("only the savepoint rolls back")
        except ValueError:
            pass
        record = tm.current_transaction()
        assert record is not None
        if fail:
            raise Conflict(item)
        return str(record.request_id)

    @tm.transactional(Propagation.MANDATORY)
    async def needs_tx() -> None:
        pass

    async def order(request: Request) -> Response:
        q = request.query_params
        await asyncio.sleep(random.random() * 0.01)
        try:
            rid = await checkout(q["item"], q.get("fail") == "1", q.get("nested_fail") == "1")
        except Conflict:
            return JSONResponse({"error": "conflict"}, status_code=409)
        return JSONResponse({"tx_request_id": rid})

    async def mandatory(request: Request) -> Response:
        try:
            await needs_tx()
        except NoActiveTransaction:
            return JSONResponse({"error": "no transaction"}, status_code=500)
        return JSONResponse({})

    app = Starlette(routes=[Route("/order", order, methods=["POST"]),
                            Route("/mandatory", mandatory)])
    install_starlette(app)

    async def create() -> None:
        async with engine.begin() as conn:
            for table in ("orders", "audit"):
                await conn.execute(text(
                    f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, request_id TEXT, item TEXT)"))

    asyncio.run(create())
    return app, tm, engine


def test_transactions_through_starlette_on_sqlite(
    tx_app: tuple[Starlette, TransactionManager[Any], Any],
) -> None:
    app, _tm, engine = tx_app
    plan = [(f"item{i}", i % 3 == 1, i % 4 == 2) for i in range(12)]
    with run_uvicorn(app) as base:

        def call(p: tuple[str, bool, bool]) -> tuple[tuple[str, bool, bool], httpx.Response]:
            item, fail, nested_fail = p
            params = {"item": item, "fail": int(fail), "nested_fail": int(nested_fail)}
            return p, httpx.post(f"{base}/order", params=params, timeout=30)

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, plan))
        mandatory = httpx.get(f"{base}/mandatory", timeout=10)
    assert mandatory.status_code == 500
    assert mandatory.json() == {"error": "no transaction"}

    async def rows(table: str) -> dict[str, list[str]]:
        async with engine.connect() as conn:
            out: dict[str, list[str]] = {}
            for rid, item in await conn.execute(text(f"SELECT request_id, item FROM {table}")):
                out.setdefault(item, []).append(rid)
            return out

    async def read() -> tuple[dict[str, list[str]], dict[str, list[str]], int]:
        o, a = await rows("orders"), await rows("audit")
        checked_out = engine.sync_engine.pool.checkedout()
        await engine.dispose()
        return o, a, checked_out

    orders, audit, checked_out = asyncio.run(read())
    assert checked_out == 0
    for (item, fail, nested_fail), r in results:
        rid = r.headers["x-request-id"]
        assert audit[item] == [rid]  # REQUIRES_NEW: committed whatever the outer did
        if fail:
            assert r.status_code == 409
            assert item not in orders
            assert f"{item}-extra" not in orders
            continue
        assert r.status_code == 200
        assert r.json() == {"tx_request_id": rid}
        assert orders[item] == [rid]
        if nested_fail:
            assert f"{item}-extra" not in orders
        else:
            assert orders[f"{item}-extra"] == [rid]


# --- RequestScope and run_with_context --------------------------------------------------------


async def test_request_scope_concurrent_runs_never_share() -> None:
    scope = RequestScope("review")

    async def handler(i: int) -> tuple[int, Any, Any, Any]:
        scope.set("step", i)
        scope.set_if_absent("cart", [i])
        scope.set_if_absent("cart", ["other"])  # already set: kept
        await asyncio.sleep(random.random() * 0.01)

        async def child() -> Any:
            await asyncio.sleep(0)
            return scope.get("tenant")

        return i, scope.get("tenant"), scope.get("cart"), await asyncio.create_task(child())

    values = {"tenant": "t"}
    results = await asyncio.gather(
        *(scope.run({"tenant": f"t{i}"}, handler, i) for i in range(30)))
    for i, tenant, cart, child_tenant in results:
        assert tenant == child_tenant == f"t{i}"
        assert cart == [i]
    scope.run(values, lambda: scope.set("tenant", "changed"))
    assert values == {"tenant": "t"}  # run works on a copy
    with pytest.raises(ScopeNotActive):
        scope.get("tenant")


async def test_run_with_context_runs_tasks_in_order_in_one_request() -> None:
    order: list[tuple[str, str]] = []

    async def load() -> str:
        order.append(("load", current_request().request_id))
        current_request().set("user_loaded", True)
        return "loaded"

    def render() -> str:
        assert current_request().get("user_loaded") is True
        order.append(("render", current_request().request_id))
        return "rendered"

    assert await run_with_context({"x-request-id": "rw-1"}, load, render) == ["loaded", "rendered"]
    assert [name for name, _ in order] == ["load", "render"]
    assert {rid for _, rid in order} == {"rw-1"}
    assert request_storage.get_store() is None
    assert with_request_context({"x-request-id": "plain"}, lambda: current_request().request_id)


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
        session.execute(text("INSERT INTO rows VALUES (:r, :s)"),
                        {"r": current_request().request_id, "s": id(session)})
        return id(session)

    @tm.transactional
    def handle(fail: bool) -> int:
        sid = repository()
        time.sleep(random.random() * 0.005)
        assert repository() == sid  # the same session, three calls deep or not
        if fail:
            raise Conflict()
        return sid

    app = Flask("review_tx_sync")

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


# --- audit and flags in concurrent requests through aiohttp ----------------------------------


def test_audit_and_flags_in_concurrent_aiohttp_requests(caplog: pytest.LogCaptureFixture) -> None:
    from asynclocal.patterns import FeatureFlags, audit

    flags = FeatureFlags()
    flags.define("beta", percentage=50, users={"u-vip"}, deny_users={"u-banned"})

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(random.random() * 0.01)
        enabled = flags.is_enabled("beta")
        audit("doc.read", target=request.match_info["doc"], enabled=enabled)
        return web.json_response({"enabled": enabled})

    def load(ctx: RequestContext) -> None:
        ctx.user = {"id": ctx.headers["x-user"]}
        ctx.access_token = "tok-" + ctx.headers["x-user"]

    app = web.Application()
    setup_aiohttp(app, on_request=load)
    app.router.add_get("/docs/{doc}", handler)
    users = ["u-vip", "u-banned", *(f"u-{i}" for i in range(20))] * 2
    random.shuffle(users)
    with caplog.at_level(logging.INFO, logger="asynclocal.audit"), run_aiohttp(app) as base:

        def call(pair: tuple[int, str]) -> tuple[int, str, httpx.Response]:
            i, user = pair
            return i, user, httpx.get(f"{base}/docs/d{i}", headers={"x-user": user},
                                      timeout=10)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, enumerate(users)))
    records = {r.audit["request_id"]: r for r in caplog.records if r.name == "asynclocal.audit"}
    decided: dict[str, bool] = {}
    for i, user, r in results:
        enabled = r.json()["enabled"]
        assert decided.setdefault(user, enabled) == enabled  # stable per user
        record = records[r.headers["x-request-id"]]
        assert record.audit["user_id"] == user
        assert record.user_id == user
        assert record.audit["target"] == f"d{i}"
        assert record.audit["action"] == "doc.read"
        assert "tok-" not in repr(record.__dict__)
    assert decided["u-vip"] is True
    assert decided["u-banned"] is False


# --- everything at once: cookie -> user, policy, transaction, refreshed call, Server-Timing ----


def test_all_patterns_in_concurrent_requests_through_starlette(
    tokens: tuple[TokenWorld, str, str], tx_app: tuple[Starlette, TransactionManager[Any], Any],
) -> None:
    world, token_url, api_url = tokens
    _, tm, engine = tx_app  # the SQLite engine with the orders/audit tables
    rooms = {"r1": Room("web0"), "r2": Room("web1")}
    token_client = httpx.AsyncClient()
    api = httpx.AsyncClient(
        base_url=api_url, auth=ContextBearerAuth(token_url=token_url, token_client=token_client))

    @timed("repository")
    async def save(item: str) -> None:
        await tm.current_session().execute(
            text("INSERT INTO orders (request_id, item) VALUES (:r, :i)"),
            {"r": current_request().request_id, "i": item})

    @timed("service")
    @requires("agent", policy=_created_the_room)
    @tm.transactional
    async def rename_room(room: Room, new_name: str) -> dict[str, Any]:
        await save(new_name)
        me = await asyncio.gather(api.get("/me"), api.get("/me"))
        return {"users": sorted({r.json()["user"] for r in me})}

    @timed("controller")
    async def controller(request: Request) -> Response:
        result = await rename_room(rooms[request.path_params["rid"]], request.query_params["n"])
        return JSONResponse({**result, "refreshes": refresh_count()})

    def from_cookies(ctx: RequestContext) -> None:
        user = ctx.cookies.get("user")
        if user:
            ctx.user = {"id": user, "roles": ["agent"]}
            ctx.access_token = ctx.cookies.get("access_token")
            ctx.refresh_token = ctx.cookies.get("refresh_token")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await api.aclose()  # in the loop that used the clients
        await token_client.aclose()

    app = Starlette(routes=[Route("/rooms/{rid}/rename", controller, methods=["POST"])],
                    lifespan=lifespan)
    install_starlette(app, on_request=from_cookies)
    plan = [(f"web{i % 4}", f"r{1 + i % 2}", f"name{i}") for i in range(16)]
    with run_uvicorn(app) as base:

        def call(p: tuple[str, str, str]) -> tuple[tuple[str, str, str], httpx.Response]:
            user, rid, name = p
            cookies = {"user": user, "access_token": f"expired-{user}",
                       "refresh_token": f"rt-{user}"}
            with httpx.Client(base_url=base, cookies=cookies) as client:
                return p, client.post(f"/rooms/{rid}/rename", params={"n": name}, timeout=30)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, plan))

    async def saved() -> dict[str, str]:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT item, request_id FROM orders"))
            out = {item: rid for item, rid in rows}
        await engine.dispose()
        return out

    rows = asyncio.run(saved())
    allowed = 0
    for (user, rid, name), r in results:
        owner = rooms[rid].created_by
        timing = r.headers.get("server-timing", "")
        assert "controller;dur=" in timing
        assert "total;dur=" in timing
        if user != owner:
            assert r.status_code == 403
            assert name not in rows
            assert "service;dur=" in timing
            assert "repository" not in timing
            continue
        allowed += 1
        assert r.status_code == 200, r.text
        assert r.json() == {"users": [user], "refreshes": 1}
        assert rows[name] == r.headers["x-request-id"]
        assert _timing_entries(timing) == ["controller", "service", "repository", "total"]
    assert allowed == 8
    assert sum(world.refreshes[f"web{i}"] for i in range(4)) == 8  # one per allowed request
