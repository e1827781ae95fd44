"""A token server and an API server that accepts only the tokens it issued."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


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
            if (
                form.get("grant_type") != "refresh_token"
                or not rt.startswith("rt-")
                or (rt in self.revoked)
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
