"""The web demo's second service: a token server and an accounts API (plain Starlette).

It uses no asynclocal at all, like a service written by another team: it
reads the propagated ``X-Request-ID`` header and the bearer token and keeps a
record of every call, which the demo fetches from ``GET /_records`` to check
what the app really sent.

* ``POST /token`` — OAuth 2 ``grant_type=refresh_token``: a new access token.
* ``GET /accounts/me`` and ``GET /accounts/me/limits`` — 401 for a missing,
  forged or expired token, else the token's user and the request id seen.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ._web_data import ACCESS, REFRESH, make_token, read_token

__all__ = ["build_peer"]

_PAUSES = (0.0, 0.0, 0.0005, 0.001, 0.002)


def build_peer(secret: bytes, seed: int, records: list[dict[str, Any]] | None = None) -> Starlette:
    """The peer app; `secret` signs and checks tokens; `records` is shared with the ledger."""
    records = [] if records is None else records
    rng = random.Random(seed)

    def record(request: Request, call: str, **fields: Any) -> None:
        records.append({"call": call, "request_id": request.headers.get("x-request-id"), **fields})

    async def token(request: Request) -> JSONResponse:
        # Parsed by hand: Starlette's request.form() needs python-multipart.
        form = parse_qs((await request.body()).decode("latin-1"))
        grant = form.get("grant_type", [""])[0]
        claims = read_token(secret, form.get("refresh_token", [""])[0], REFRESH)
        if grant != "refresh_token" or claims is None or claims.expired:
            record(request, "token", status=400, nonce=claims.nonce if claims else None)
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        new = make_token(secret, ACCESS, claims.user, claims.nonce, 1, 3600)
        record(request, "token", status=200, nonce=claims.nonce, user=claims.user)
        return JSONResponse({"access_token": new, "token_type": "Bearer", "expires_in": 3600})

    async def account(request: Request, call: str) -> JSONResponse:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        claims = read_token(secret, value, ACCESS) if scheme == "Bearer" else None
        await asyncio.sleep(rng.choice(_PAUSES))
        if claims is None or claims.expired:
            record(
                request,
                call,
                status=401,
                nonce=claims.nonce if claims else None,
                gen=claims.gen if claims else None,
            )
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        seen = request.headers.get("x-request-id")
        record(request, call, status=200, nonce=claims.nonce, gen=claims.gen, user=claims.user)
        return JSONResponse({"user": claims.user, "request_id": seen, "call": call})

    async def me(request: Request) -> JSONResponse:
        return await account(request, "me")

    async def limits(request: Request) -> JSONResponse:
        return await account(request, "limits")

    async def dump(request: Request) -> JSONResponse:
        return JSONResponse(records)

    return Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/accounts/me", me),
            Route("/accounts/me/limits", limits),
            Route("/_records", dump),
        ]
    )
