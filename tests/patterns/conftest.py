"""Real servers for the pattern tests: a token server and an API server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.servers import run_uvicorn


@dataclass
class AuthWorld:
    """The state shared by the token server and the API server (one server loop each)."""

    token_url: str = ""
    api_url: str = ""
    # access token -> user id, for tokens the API accepts
    valid: dict[str, str] = field(default_factory=dict)
    # refresh token -> user id; tokens starting with "revoked-" are refused
    refresh_calls: Counter[str] = field(default_factory=Counter)
    seen_tokens: list[tuple[str, str]] = field(default_factory=list)
    _n: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def user_of_refresh(self, refresh_token: str) -> str | None:
        if refresh_token.startswith("rt-"):
            return refresh_token[3:]
        return None


def token_app(world: AuthWorld) -> Starlette:
    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        rt = form.get("refresh_token", "")
        world.refresh_calls[rt] += 1
        await asyncio.sleep(random.uniform(0.005, 0.03))  # widen the window for races
        user = world.user_of_refresh(rt)
        if form.get("grant_type") != "refresh_token" or user is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        access = f"at-{user}-{next(world._n)}"
        world.valid[access] = user
        return JSONResponse({"access_token": access, "token_type": "Bearer", "refresh_token": rt})

    return Starlette(routes=[Route("/token", token, methods=["POST"])])


def api_app(world: AuthWorld) -> Starlette:
    async def me(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        await asyncio.sleep(random.uniform(0, 0.01))
        user = world.valid.get(token)
        if user is None:
            return JSONResponse({"error": "expired"}, status_code=401)
        world.seen_tokens.append((user, token))
        return JSONResponse({"user": user, "token": token})

    return Starlette(routes=[Route("/me", me)])


@pytest.fixture(scope="module")
def auth_world() -> Iterator[AuthWorld]:
    world = AuthWorld()
    with run_uvicorn(token_app(world)) as token_base, run_uvicorn(api_app(world)) as api_base:
        world.token_url = f"{token_base}/token"
        world.api_url = api_base
        yield world


class ListHandler(logging.Handler):
    """Keeps every record emitted on the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def capture_logger() -> Iterator[ListHandler]:
    """Attach a `ListHandler` to ``asynclocal.timing`` and ``asynclocal.audit``."""
    handler = ListHandler()
    loggers = [logging.getLogger("asynclocal.timing"), logging.getLogger("asynclocal.audit")]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for lg, level in zip(loggers, saved):
            lg.removeHandler(handler)
            lg.setLevel(level)


@pytest.fixture
def timing_reports() -> Iterator[None]:
    """``Server-Timing`` headers and INFO summaries on for one test, then the defaults."""
    import dataclasses
    import logging

    from asynclocal.patterns import timing

    previous = timing.configure(server_timing=True, summary_level=logging.INFO)
    try:
        yield
    finally:
        timing.configure(**dataclasses.asdict(previous))
