"""The web demo's example service (Starlette), built only from asynclocal's public pieces.

* `asynclocal.web.starlette.install` with an ``on_request`` hook reading the user
  from the ``access_token`` cookie (an access-token middleware);
* ``@requires``/``authorize`` policies: payments are readable by their owner and
  by auditors, a room may be renamed only by the agent who created it (403 else);
* ``@transactional`` on an embedded SQLite database, the service run in a worker
  thread, the repository (three calls deep) using ``current_session()`` and
  logging without being handed the request;
* the peer called through `ContextBearerAuth` (token refreshed once per request)
  with the request id propagated by `asynclocal.integrations.httpx`;
* ``@timed`` spans, answered as a ``Server-Timing`` header and a summary log line.

Every log line carries ``subject`` (``payment/17``): it comes from the domain
arguments, never from the context, so the demo can check the context's
``request_id`` on that line against the response of the same request.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, event, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import request as al_request
from ..patterns import audit, authorize, timed, timing
from ..patterns.auth import ContextBearerAuth, TokenRefreshError, Tokens, refresh_count
from ..patterns.rbac import Principal, Unauthenticated
from ..request import RequestContext, RequestRejected
from ..transactions import current_session, transactional
from ..web.starlette import install
from ._web_data import ACCESS, ROLES, payment_owner, read_token, room_creator, subject_of

__all__ = ["DemoUser", "build_app", "create_database"]

log = logging.getLogger("asynclocal.demo.app")

#: Connections from the app to the peer (and calls in flight at once).
PEER_CONNECTIONS = 16


@dataclass(frozen=True)
class DemoUser:
    id: str
    roles: tuple[str, ...]


# -- database ------------------------------------------------------------------


def create_database(path: str, rows: int) -> Engine:
    """A SQLite file with `rows` payments and rooms (ids 0..rows-1), owned per `_web_data`."""
    engine = create_engine(f"sqlite:///{path}", pool_size=8, max_overflow=8)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE payments (id INTEGER PRIMARY KEY, owner TEXT, cents INT)"))
        conn.execute(text("CREATE TABLE rooms (id INTEGER PRIMARY KEY, creator TEXT, name TEXT)"))
        conn.execute(
            text("INSERT INTO payments VALUES (:id, :owner, :cents)"),
            [{"id": i, "owner": payment_owner(i), "cents": 100 + i} for i in range(rows)],
        )
        conn.execute(
            text("INSERT INTO rooms VALUES (:id, :creator, :name)"),
            [{"id": i, "creator": room_creator(i), "name": f"room {i}"} for i in range(rows)],
        )
    return engine


# -- repository (third call down: no request, no session passed in) --------------


@timed("repository.find_payment")
def find_payment(payment_id: int) -> dict[str, Any] | None:
    row = current_session().execute(
        text("SELECT id, owner, cents FROM payments WHERE id = :id"), {"id": payment_id}
    )
    found = row.mappings().one_or_none()
    log.info("payment loaded", extra={"subject": subject_of("payment", payment_id)})
    return None if found is None else dict(found)


@timed("repository.find_room")
def find_room(room_id: int) -> dict[str, Any] | None:
    row = current_session().execute(
        text("SELECT id, creator, name FROM rooms WHERE id = :id"), {"id": room_id}
    )
    found = row.mappings().one_or_none()
    log.info("room loaded", extra={"subject": subject_of("room", room_id)})
    return None if found is None else dict(found)


@timed("repository.rename_room")
def update_room_name(room_id: int, name: str) -> None:
    current_session().execute(
        text("UPDATE rooms SET name = :name WHERE id = :id"), {"id": room_id, "name": name}
    )
    log.info("room renamed", extra={"subject": subject_of("room", room_id)})


# -- services (run in a worker thread, inside the request's transaction) ----------


def may_read_payment(principal: Principal, payment: dict[str, Any]) -> bool:
    return bool(payment["owner"] == principal.id or principal.has_role("auditor"))


def created_the_room(principal: Principal, room: dict[str, Any]) -> bool:
    return bool(room["creator"] == principal.id)


class NotFound(RequestRejected):
    status_code = 404
    public_message = "Not Found"


@timed("service.show_payment")
@transactional
def show_payment(payment_id: int) -> dict[str, Any]:
    payment = find_payment(payment_id)
    if payment is None:
        raise NotFound(f"no payment {payment_id}")
    authorize(policy=may_read_payment, resource=payment)
    return payment


@timed("service.rename_room")
@transactional
def rename_room(room_id: int, name: str) -> dict[str, Any]:
    room = find_room(room_id)
    if room is None:
        raise NotFound(f"no room {room_id}")
    authorize("agent", policy=created_the_room, resource=room)
    update_room_name(room_id, name)
    audit("room.rename", target=subject_of("room", room_id), old=room["name"], new=name)
    return {**room, "name": name}


# -- the app -------------------------------------------------------------------


def build_app(secret: bytes, peer: httpx.AsyncClient, ledger: Any) -> Starlette:
    """The example service. `peer` is an `httpx.AsyncClient` with `ContextBearerAuth`;
    `ledger` a ``grpc.aio`` channel to the ledger (made after ``al_grpc.install``)."""
    from ._web_ledger import call_ledger

    # The demo shows its spans to its own client; a real service keeps this off (the
    # default) or passes a predicate that admits only internal clients.
    timing.configure(server_timing=True, summary_level=logging.INFO)

    def on_request(ctx: RequestContext) -> None:
        claims = read_token(secret, ctx.cookies.get("access_token"), ACCESS)
        if claims is None:
            raise Unauthenticated("no valid access_token cookie")
        ctx.user = DemoUser(claims.user, ROLES[claims.user])
        ctx.access_token = ctx.cookies["access_token"]
        ctx.refresh_token = ctx.cookies.get("refresh_token")

    # At most as many calls in flight as the pool has connections: httpx's pool gets slow
    # (a socket poll per connection per queued request) when requests queue inside it.
    gate = asyncio.Semaphore(PEER_CONNECTIONS)

    async def peer_get(path: str) -> httpx.Response:
        async with gate:
            return await peer.get(path)

    @timed("peer.accounts")
    async def call_peer(subject: str) -> dict[str, Any]:
        # Two concurrent calls: with an expired token both get a 401, one refresh serves both.
        # The ledger (gRPC) is called next to them: its call continues this request.
        me, limits, booked = await asyncio.gather(
            peer_get("/accounts/me"), peer_get("/accounts/me/limits"), call_ledger(ledger, subject)
        )
        me.raise_for_status()
        limits.raise_for_status()
        log.info("peer answered", extra={"subject": subject})
        return {"me": me.json(), "limits": limits.json(), "ledger": booked}

    def answer(subject: str, result: dict[str, Any], peer_seen: dict[str, Any]) -> JSONResponse:
        ctx = al_request.current_request()
        return JSONResponse(
            {
                "request_id": ctx.request_id,
                "trace_id": ctx.trace_id,
                "user": ctx.user_id,
                "subject": subject,
                "result": result,
                "peer": peer_seen,
                "refreshes": refresh_count(),
            }
        )

    @timed("controller.payment")
    async def get_payment(request: Request) -> Response:
        payment_id = int(request.path_params["id"])
        subject = subject_of("payment", payment_id)
        log.info("GET payment", extra={"subject": subject})
        payment = await asyncio.to_thread(show_payment, payment_id)
        return answer(subject, payment, await call_peer(subject))

    @timed("controller.rename")
    async def post_rename(request: Request) -> Response:
        room_id = int(request.path_params["id"])
        subject = subject_of("room", room_id)
        body = await request.json()
        log.info("rename requested", extra={"subject": subject})
        room = await asyncio.to_thread(rename_room, room_id, str(body["name"]))
        return answer(subject, room, await call_peer(subject))

    async def rejected(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestRejected)
        kind = "payment" if request.url.path.startswith("/payments/") else "room"
        subject = subject_of(kind, int(request.path_params.get("id", -1)))
        log.warning("request rejected (%s)", exc.status_code, extra={"subject": subject})
        return JSONResponse(
            {"error": exc.public_message, "request_id": al_request.request_id()},
            status_code=exc.status_code,
            headers=dict(exc.headers),  # e.g. WWW-Authenticate on a 401
        )

    app = Starlette(
        routes=[
            Route("/payments/{id:int}", get_payment),
            Route("/rooms/{id:int}/rename", post_rename, methods=["POST"]),
        ]
    )
    install(app, on_request=on_request)
    app.add_exception_handler(RequestRejected, rejected)  # JSON instead of install()'s text
    return app


def peer_client(peer_url: str) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """The clients the app calls the peer with (create them after instrumenting httpx).

    The first carries `ContextBearerAuth`; the second, only for token refreshes, is
    separate and long-lived: `ContextBearerAuth(token_url=...)` would open a new
    `httpx.AsyncClient` per refresh (an SSL context, 20-170 ms of CPU), and a refresh
    through the first client's pool could wait forever for a connection, because
    every call waiting for the refresh still holds the connection of its 401.
    """
    limits = httpx.Limits(
        max_connections=PEER_CONNECTIONS, max_keepalive_connections=PEER_CONNECTIONS
    )
    tokens = httpx.AsyncClient(base_url=peer_url, limits=limits, timeout=30)

    async def refresh(refresh_token: str) -> Tokens:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        response = await tokens.post("/token", data=form)
        if response.status_code != 200:
            raise TokenRefreshError(f"the peer refused the refresh (HTTP {response.status_code})")
        return Tokens(str(response.json()["access_token"]))

    auth = ContextBearerAuth(refresh=refresh)
    client = httpx.AsyncClient(base_url=peer_url, auth=auth, limits=limits, timeout=30)
    return client, tokens
