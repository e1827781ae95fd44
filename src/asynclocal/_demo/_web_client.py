"""The web demo's load: a planned mix of requests, fired with bounded concurrency over httpx."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from ._base import Progress
from ._web_data import (
    ACCESS,
    REFRESH,
    USERS,
    expected_status,
    make_token,
    payment_owner,
    room_creator,
    subject_of,
)

__all__ = ["Outcome", "Planned", "fire", "plan"]

# Incoming ids the middleware must refuse (replace with a fresh id, never echo).
_HOSTILE: tuple[str | bytes, ...] = (
    "",
    "x" * 129,
    "<script>alert({n})</script>",
    "id with spaces {n}",
    "%0d%0aSet-Cookie:evil={n}",
    "{n};DROP TABLE rooms",
    "caf\u00e9-{n}".encode(),
)


@dataclass(frozen=True)
class Planned:
    """One request of the burst and everything the checks expect of it."""

    seq: int
    kind: str  # "payment" (GET /payments/{seq}) or "room" (POST /rooms/{seq}/rename)
    user: str
    expired: bool  # the access token cookie is already expired: one refresh expected
    id_mode: str  # "none", "valid" (must be echoed) or "hostile" (must be replaced)
    sent_id: str | bytes | None
    expected: int

    @property
    def subject(self) -> str:
        return subject_of(self.kind, self.seq)


@dataclass(frozen=True)
class Outcome:
    planned: Planned
    status: int
    echoed_id: str | None
    server_timing: str | None
    body: dict[str, Any] | None
    seconds: float
    error: str | None = None


def plan(requests: int, seed: int) -> list[Planned]:
    """A reproducible mix: 2/3 payments, 1/3 renames, ~1/4 expired tokens, three id modes."""
    rng = random.Random(seed)
    planned = []
    for seq in range(requests):
        kind = "payment" if rng.random() < 0.66 else "room"
        rightful = payment_owner(seq) if kind == "payment" else room_creator(seq)
        user = rightful if rng.random() < 0.6 else rng.choice(USERS)
        mode = rng.choice(("none", "valid", "hostile"))
        sent: str | bytes | None = None
        if mode == "valid":
            sent = f"client-{seq}-{rng.getrandbits(32):08x}"
        elif mode == "hostile":
            template = rng.choice(_HOSTILE)
            sent = (
                template.replace(b"{n}", str(seq).encode())
                if isinstance(template, bytes)
                else template.replace("{n}", str(seq))
            )
        planned.append(
            Planned(
                seq,
                kind,
                user,
                rng.random() < 0.25,
                mode,
                sent,
                expected_status(kind, user, seq),
            )
        )
    return planned


def _headers(p: Planned, secret: bytes) -> dict[str, Any]:
    access = make_token(secret, ACCESS, p.user, p.seq, 0, -60 if p.expired else 3600)
    refresh = make_token(secret, REFRESH, p.user, p.seq, 0, 3600)
    headers: dict[str, Any] = {"cookie": f"access_token={access}; refresh_token={refresh}"}
    if p.sent_id is not None:
        headers["x-request-id"] = p.sent_id
    return headers


async def _send(client: httpx.AsyncClient, p: Planned, secret: bytes) -> Outcome:
    started = time.perf_counter()
    try:
        if p.kind == "payment":
            response = await client.get(f"/payments/{p.seq}", headers=_headers(p, secret))
        else:
            name = {"name": f"renamed by request {p.seq}"}
            response = await client.post(
                f"/rooms/{p.seq}/rename", json=name, headers=_headers(p, secret)
            )
        seconds = time.perf_counter() - started
        is_json = response.headers.get("content-type", "").startswith("application/json")
        body = response.json() if is_json else None
    except (httpx.HTTPError, ValueError) as exc:
        return Outcome(p, 0, None, None, None, 0.0, repr(exc))
    return Outcome(
        p,
        response.status_code,
        response.headers.get("x-request-id"),
        response.headers.get("server-timing"),
        body if isinstance(body, dict) else None,
        seconds,
    )


async def _fire(
    base_url: str, planned: list[Planned], secret: bytes, concurrency: int, progress: Progress
) -> tuple[list[Outcome], float]:
    # The gate keeps requests out of httpx's pool queue, which costs CPU per queued request.
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    outcomes: list[Outcome] = []
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def one(p: Planned) -> None:
            async with gate:
                outcomes.append(await _send(client, p, secret))
            progress.advance()

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in planned))
        elapsed = time.perf_counter() - started
    return outcomes, elapsed


def fire(
    base_url: str, planned: list[Planned], secret: bytes, concurrency: int, progress: Progress
) -> tuple[list[Outcome], float]:
    """Send every planned request (at most `concurrency` at a time); return outcomes and seconds."""
    return asyncio.run(_fire(base_url, planned, secret, concurrency, progress))
