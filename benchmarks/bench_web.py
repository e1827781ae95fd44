"""Request-id middleware overhead: asynclocal vs asgi-correlation-id vs starlette-context.

Run: ``.venv/bin/python benchmarks/bench_web.py [--quick]``

A minimal Starlette app (one route answering ``ok``) is measured five ways:
bare; with ``asynclocal.web.asgi.RequestContextMiddleware`` (id from the
header or generated, validation, echo, trace continuation, `RequestContext`
in its storage, and `asynclocal.logging.ContextFilter` installed on the log
handler); with ``asgi_correlation_id.CorrelationIdMiddleware`` (and its log
filter); with ``starlette_context``'s ``RawContextMiddleware`` +
``RequestIdPlugin``; and with a minimal hand-written pure-ASGI id middleware
(the floor: read or make an id, validate it, set a ContextVar, echo it).

1. In-process: the ASGI app is called directly with a fake scope/receive/send,
   many times; µs per request (best of many short interleaved rounds), the
   overhead over bare, and the time as a multiple of bare, with and without an
   incoming (valid UUID4) id.
2. End to end: each app under uvicorn in its own subprocess on 127.0.0.1,
   loaded from another process: ``wrk`` when it is installed (Debian package
   ``wrk``), else a minimal asyncio raw-socket client; requests/s (best of the
   rounds, interleaved) and the ratio to bare.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

VARIANTS = ("bare", "asynclocal", "asgi-correlation-id", "starlette-context", "hand-written")
PEERS = ("asgi-correlation-id", "starlette-context", "hand-written")

_hand_id: ContextVar[str | None] = ContextVar("hand_written_request_id", default=None)
_HAND_VALID = re.compile(r"[A-Za-z0-9\-._~:+=/]{1,128}").fullmatch


class HandWrittenIdMiddleware:
    """The floor: the least a correct pure-ASGI request-id middleware does."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")
                break
        if rid is None or _HAND_VALID(rid) is None:
            rid = os.urandom(16).hex()
        raw = rid.encode()

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", raw)]
            await send(message)

        token = _hand_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _hand_id.reset(token)


class HandWrittenFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _hand_id.get()
        return True


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def build(variant: str) -> Any:
    """The benchmark app for `variant`, with that variant's logging filter installed."""
    app = Starlette(routes=[Route("/", ok)])
    handler = logging.NullHandler()
    logging.getLogger().handlers[:] = [handler]
    if variant == "asynclocal":
        from asynclocal.logging import ContextFilter
        from asynclocal.web.asgi import RequestContextMiddleware

        handler.addFilter(ContextFilter())
        app.add_middleware(RequestContextMiddleware)
    elif variant == "asgi-correlation-id":
        from asgi_correlation_id import CorrelationIdFilter, CorrelationIdMiddleware

        handler.addFilter(CorrelationIdFilter())
        app.add_middleware(CorrelationIdMiddleware)
    elif variant == "starlette-context":
        from starlette_context.middleware import RawContextMiddleware
        from starlette_context.plugins import RequestIdPlugin

        app.add_middleware(RawContextMiddleware, plugins=(RequestIdPlugin(),))
    elif variant == "hand-written":
        handler.addFilter(HandWrittenFilter())
        app.add_middleware(HandWrittenIdMiddleware)
    elif variant != "bare":
        raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return app


# -- in-process ---------------------------------------------------------------


async def _drive(app: Any, n: int, incoming: bool) -> float:
    headers = [(b"host", b"127.0.0.1"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    rid = uuid.uuid4().hex.encode()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    extra = [(b"x-request-id", rid)] if incoming else []
    start = time.perf_counter()
    for _ in range(n):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "root_path": "",
            "query_string": b"",
            "headers": [*headers, *extra],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)
        sent.clear()
    return (time.perf_counter() - start) / n * 1e6


def in_process(n: int, rounds: int) -> dict[tuple[str, bool], float]:
    apps = {v: build(v) for v in VARIANTS}
    best: dict[tuple[str, bool], float] = {}

    async def main() -> None:
        for app in apps.values():  # warm up: build middleware stacks, caches
            await _drive(app, 200, True)
        for _ in range(rounds):
            for incoming in (False, True):
                for variant, app in apps.items():
                    us = await _drive(app, n, incoming)
                    key = (variant, incoming)
                    best[key] = min(best.get(key, float("inf")), us)

    asyncio.run(main())
    return best


# -- end to end ----------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(variant: str, port: int) -> None:
    import uvicorn

    uvicorn.run(build(variant), host="127.0.0.1", port=port, log_level="error", access_log=False)


async def _connection(port: int, count: int) -> None:
    """One keep-alive connection sending `count` GETs, half with an incoming id."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    plain = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with_id = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: %s\r\n\r\n"
    try:
        for i in range(count):
            if i % 2:
                writer.write(with_id % uuid.uuid4().hex.encode())
            else:
                writer.write(plain)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected response {head[:40]!r}")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
    finally:
        writer.close()


async def _load(port: int, total: int, concurrency: int) -> float:
    """Requests/s for `total` requests over `concurrency` keep-alive connections.

    A minimal raw-socket client, so the server (not the load generator) is
    what is measured.
    """
    await _connection(port, 50)  # warm up
    per_connection = total // concurrency
    start = time.perf_counter()
    await asyncio.gather(*(_connection(port, per_connection) for _ in range(concurrency)))
    return per_connection * concurrency / (time.perf_counter() - start)


def _wrk(port: int, seconds: float, concurrency: int) -> float:
    """Requests/s `wrk` measured against the server on `port` (one wrk thread)."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{int(seconds)}s",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if match is None or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


def end_to_end(
    total: int, concurrency: int, rounds: int, use_wrk: bool, seconds: float
) -> dict[str, float]:
    """Best requests/s per variant; all servers run at once and rounds interleave them."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    ports = {variant: _free_port() for variant in VARIANTS}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--serve", variant, "--port", str(port)], env=env
        )
        for variant, port in ports.items()
    ]
    best: dict[str, float] = {}
    try:
        for port in ports.values():
            _wait_port(port)
        for port in ports.values():  # warm up every server
            asyncio.run(_load(port, 200, 4))
        for _ in range(rounds):
            for variant, port in ports.items():
                if use_wrk:
                    rps = _wrk(port, seconds, concurrency)
                else:
                    rps = asyncio.run(_load(port, total, concurrency))
                best[variant] = max(best.get(variant, 0.0), rps)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    return best


def _wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"server on port {port} did not start")


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if j == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--no-e2e", action="store_true", help="skip the uvicorn part")
    parser.add_argument("--no-wrk", action="store_true", help="load with the asyncio client")
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.serve, args.port)
        return
    # Many short interleaved rounds, best of each: robust on a noisy shared machine.
    n, rounds = (500, 12) if args.quick else (1_000, 30)
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"\nIn-process, through the ASGI interface (best of {rounds} rounds of {n} requests):\n")
    res = in_process(n, rounds)
    rows = [
        [
            "middleware",
            "µs/req (no id)",
            "overhead",
            "x bare",
            "µs/req (incoming id)",
            "overhead",
            "x bare",
        ]
    ]
    for variant in VARIANTS:
        cells = [variant]
        for incoming in (False, True):
            us = res[(variant, incoming)]
            base = res[("bare", incoming)]
            cells += [
                f"{us:.1f}",
                "-" if variant == "bare" else f"+{us - base:.1f} µs",
                f"{us / base:.2f}x",
            ]
        rows.append(cells)
    print(_table(rows))
    for incoming in (False, True):
        over = {v: res[(v, incoming)] - res[("bare", incoming)] for v in VARIANTS[1:]}
        ratios = ", ".join(f"{over['asynclocal'] / over[peer]:.2f}x {peer}'s" for peer in PEERS)
        label = "incoming id" if incoming else "no id"
        print(f"  asynclocal overhead ({label}): {ratios}")
    if args.no_e2e:
        return
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    total, conc, e2e_rounds = (1_600, 16, 4) if args.quick else (3_200, 32, 8)
    seconds = 2.0 if args.quick else 3.0
    load = (
        f"wrk, {conc} connections for {seconds:g} s"
        if use_wrk
        else f"{total} requests over {conc} connections from an asyncio client"
    )
    print(f"\nEnd to end under uvicorn, {load} (best of {e2e_rounds}):\n")
    e2e = end_to_end(total, conc, e2e_rounds, use_wrk, seconds)
    rows = [["middleware", "requests/s", "vs bare"]]
    for variant in VARIANTS:
        rows.append([variant, f"{e2e[variant]:.0f}", f"{e2e[variant] / e2e['bare']:.2f}x"])
    print(_table(rows))


if __name__ == "__main__":
    main()
