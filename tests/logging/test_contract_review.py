"""Contract review of issue 3's logging part, written from the issue, README and docs/logging.md.

Checks what a user relies on: a format naming `%(request_id)s` never breaks outside a
request, a `QueueHandler`/`QueueListener` prints the request each record was logged in,
JSON output has the documented keys, and secrets (Authorization, Cookie, `password=`,
JWTs in tracebacks, the request's own access token) never reach any output. The last test
serves a real Starlette app under uvicorn and checks every JSON line of every request.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.handlers
import queue
import random
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import asynclocal.logging
from asynclocal import current_request, request_id, with_request_context
from asynclocal.logging import ContextFilter, JsonFormatter
from asynclocal.request import RequestContext, request_storage
from asynclocal.threads import ThreadPoolExecutor
from tests.support.servers import run_uvicorn

pytestmark = pytest.mark.timeout(60)

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
TOKEN = "tok_live_9f8e7d6c5b4a"


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """An isolated logger (no propagation) that each test gives its own handlers."""
    lg = logging.getLogger(f"tests.logging.review.{random.random()}")
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    try:
        yield lg
    finally:
        for h in list(lg.handlers):
            lg.removeHandler(h)
            h.close()


def stream_handler(fmt: str, *filters: logging.Filter) -> tuple[logging.Handler, io.StringIO]:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter(fmt))
    for f in filters:
        handler.addFilter(f)
    return handler, buf


def in_request(rid: str, fn: Any, **fields: Any) -> Any:
    ctx = RequestContext(rid, method="GET", path="/p", fields=fields or None)
    return request_storage.run(ctx, fn)


# --------------------------------------------------------------------------- placeholders


def test_request_id_format_outside_a_request_uses_the_placeholder(logger: logging.Logger) -> None:
    handler, buf = stream_handler(
        "%(levelname)s [%(request_id)s|%(trace_id)s|%(user_id)s|%(tenant)s] %(message)s",
        ContextFilter(fields=("tenant",)),
    )
    logger.addHandler(handler)
    logger.info("outside")
    in_request("r-1", lambda: logger.info("inside"), tenant="acme")
    assert buf.getvalue().splitlines() == [
        "INFO [-|-|-|-] outside",
        "INFO [r-1|-|-|acme] inside",
    ]


def test_custom_placeholder_and_child_logger_records(logger: logging.Logger) -> None:
    handler, buf = stream_handler(
        "[%(request_id)s] %(name)s %(message)s", ContextFilter(placeholder="none")
    )
    logger.addHandler(handler)
    child = logging.getLogger(logger.name + ".repo")
    child.info("from child")  # propagates to the handler, whose filter sees it
    assert buf.getvalue() == f"[none] {child.name} from child\n"


def test_install_on_a_basic_config_root(logger: logging.Logger) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buf = io.StringIO()
    for h in saved_handlers:
        root.removeHandler(h)
    try:
        logging.basicConfig(
            stream=buf,
            level="INFO",
            format="%(levelname)s [%(request_id)s] %(message)s",
            force=True,
        )
        asynclocal.logging.install(fields=("tenant",))
        logger.propagate = True
        logger.info("no request")
        in_request("inst-1", lambda: logger.info("in request"))
    finally:
        asynclocal.logging.uninstall()
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in saved_handlers:
            root.addHandler(h)
        root.setLevel(saved_level)
    assert buf.getvalue().splitlines() == ["INFO [-] no request", "INFO [inst-1] in request"]


# --------------------------------------------------------------------------- QueueHandler


async def _simulate(logger: logging.Logger, n: int) -> list[str]:
    """n concurrent requests; each logs three calls deep, from a pool job and a late task."""
    pool = ThreadPoolExecutor(max_workers=4)
    background: list[asyncio.Task[None]] = []

    def repository(tag: str) -> None:
        logger.info("repo %s %s", tag, request_id())

    def service(tag: str) -> None:
        repository(tag)

    async def controller(tag: str) -> None:
        await asyncio.sleep(random.random() / 1000)
        service(tag)

    async def late(tag: str) -> None:
        await asyncio.sleep(random.random() / 200)
        logger.info("late %s %s", tag, request_id())

    async def handle() -> None:
        rid = current_request().request_id
        await controller(rid)
        await asyncio.get_running_loop().run_in_executor(
            pool, lambda: logger.info("pool %s %s", rid, request_id())
        )
        background.append(asyncio.create_task(late(rid)))

    ids = [f"q-{i}" for i in range(n)]
    try:
        await asyncio.gather(*(with_request_context({"X-Request-ID": rid}, handle) for rid in ids))
        await asyncio.gather(*background)
    finally:
        pool.shutdown(wait=True)
    return ids


def _check_queue_lines(lines: list[str], ids: list[str]) -> None:
    assert len(lines) == 3 * len(ids), len(lines)
    per_id: dict[str, list[str]] = {}
    for line in lines:
        m = re.fullmatch(r"\[([^\]]+)\] (repo|pool|late) (\S+) (\S+)", line)
        assert m, line
        assert m.group(1) == m.group(3) == m.group(4), line
        per_id.setdefault(m.group(1), []).append(m.group(2))
    assert sorted(per_id) == sorted(ids)
    assert all(sorted(kinds) == ["late", "pool", "repo"] for kinds in per_id.values())


@pytest.mark.parametrize("where", ["queue_handler", "listener_handler_with_capture"])
def test_queue_handler_and_listener_print_each_records_own_request(
    logger: logging.Logger, where: str
) -> None:
    q: queue.Queue[logging.LogRecord] = queue.Queue()
    qh = logging.handlers.QueueHandler(q)
    target, buf = stream_handler("[%(request_id)s] %(message)s")
    if where == "queue_handler":
        qh.addFilter(ContextFilter())
    else:  # documented: a filter only on the listener's handlers needs capture_at_creation
        target.addFilter(ContextFilter())
        asynclocal.logging.capture_at_creation()
    logger.addHandler(qh)
    listener = logging.handlers.QueueListener(q, target, respect_handler_level=True)
    listener.start()
    try:
        ids = asyncio.run(_simulate(logger, 100))
    finally:
        listener.stop()
        if where != "queue_handler":
            asynclocal.logging.stop_capture_at_creation()
    _check_queue_lines(buf.getvalue().splitlines(), ids)


# --------------------------------------------------------------------------- JSON


def test_json_output_keys_inside_and_outside(logger: logging.Logger) -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter(fields=("tenant",)))
    handler.addFilter(ContextFilter(fields=("tenant",)))
    logger.addHandler(handler)
    logger.info("outside")

    def inside() -> None:
        ctx = current_request()
        ctx.user = {"id": "u-7"}
        ctx.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        logger.info("two\nlines", extra={"order": 42, "password": "hunter2"})

    in_request("json-1", inside, tenant="acme")
    out, inn = (json.loads(line) for line in buf.getvalue().splitlines())
    for key in (
        "asctime",
        "levelname",
        "name",
        "message",
        "request_id",
        "trace_id",
        "span_id",
        "user_id",
        "tenant",
    ):
        assert key in out, key
        assert key in inn, key
    assert out["request_id"] is None
    assert out["user_id"] is None
    assert out["tenant"] is None
    assert inn["request_id"] == "json-1"
    assert inn["user_id"] == "u-7"
    assert inn["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert inn["tenant"] == "acme"
    assert inn["message"] == "two\nlines"  # JSON escapes; parses back to the real text
    assert inn["order"] == 42
    assert inn["password"] == "[REDACTED]"
    assert "hunter2" not in buf.getvalue()


# --------------------------------------------------------------------------- redaction


SECRET_MESSAGES = {
    "authorization": (
        "request headers: Authorization: Bearer abcdefghijk12345",
        "abcdefghijk12345",
    ),
    "basic": ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    "cookie": ("Cookie: sessionid=s3ss10nvalue99; theme=dark", "s3ss10nvalue99"),
    "password-query": ("POST /login?user=ann&password=hunter2secret&x=1", "hunter2secret"),
    "password-json": ('body {"password": "pa55word!", "user": "ann"}', "pa55word!"),
    "jwt": (f"token was {JWT} ok", JWT),
    # Authorization schemes other than Bearer/Basic (Django REST framework's "Token").
    "authorization-token-scheme": (
        "Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
        "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
    ),
    "dsn-password": ("connecting to postgresql://app:dbpa55word@127.0.0.1/db", "dbpa55word"),
    # The repr of an ASGI/WSGI header list.
    "header-list": (
        "headers [(b'host', b'x'), (b'x-api-key', b'k3yk3yk3y'), (b'cookie', b'theme=dark')]",
        "k3yk3yk3y",
    ),
}


def test_header_lists_in_extra_are_masked(logger: logging.Logger) -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    raw = [(b"authorization", b"Token 9944b09199c62bcf"), (b"host", b"127.0.0.1")]
    pairs = [("Cookie", "sessionid=s3ss10nvalue99"), ("Accept", "text/plain")]
    in_request("hl-1", lambda: logger.info("request", extra={"raw": raw, "pairs": pairs}))
    text = buf.getvalue()
    assert "9944b09199c62bcf" not in text
    assert "s3ss10nvalue99" not in text
    assert "text/plain" in text


@pytest.mark.parametrize("case", sorted(SECRET_MESSAGES))
@pytest.mark.parametrize("output", ["text", "json"])
def test_secrets_in_messages_are_masked(logger: logging.Logger, case: str, output: str) -> None:
    message, secret = SECRET_MESSAGES[case]
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter() if output == "json" else logging.Formatter("[%(request_id)s] %(message)s")
    )
    logger.addHandler(handler)
    in_request("red-1", lambda: logger.info(message))
    logger.info("%s", message)  # args, outside a request
    text = buf.getvalue()
    assert secret not in text
    assert text.count("[REDACTED]") >= 2


@pytest.mark.parametrize("output", ["text", "json"])
def test_jwt_and_token_in_exception_traceback_are_masked(
    logger: logging.Logger, output: str
) -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter() if output == "json" else logging.Formatter("[%(request_id)s] %(message)s")
    )
    logger.addHandler(handler)

    def failing() -> None:
        current_request().access_token = TOKEN
        try:
            raise PermissionError(f"upstream refused jwt={JWT} using {TOKEN}")
        except PermissionError:
            logger.exception("call failed")

    in_request("exc-1", failing)
    text = buf.getvalue()
    assert "PermissionError" in text
    assert "call failed" in text
    assert JWT not in text
    assert JWT[:36] not in text
    assert TOKEN not in text
    if output == "text":
        assert text.startswith("[exc-1] call failed\n")


def test_access_token_never_in_repr_or_any_log_output(logger: logging.Logger) -> None:
    text_handler, text_buf = stream_handler(
        "[%(request_id)s] %(user_id)s %(message)s", ContextFilter()
    )
    json_buf = io.StringIO()
    json_handler = logging.StreamHandler(json_buf)
    json_handler.addFilter(ContextFilter())
    json_handler.setFormatter(JsonFormatter())
    logger.addHandler(text_handler)
    logger.addHandler(json_handler)

    def handler() -> str:
        ctx = current_request()
        ctx.access_token = TOKEN
        ctx.refresh_token = TOKEN + "_refresh"
        ctx.user = {"id": "u-1"}
        logger.info("ctx is %r", ctx)
        logger.info("calling upstream with %s", TOKEN)
        logger.info("ctx", extra={"ctx_repr": repr(ctx), "upstream_token": TOKEN})
        logger.info("refresh %s", ctx.refresh_token)
        return repr(ctx) + str(ctx)

    shown = in_request("tok-1", handler)
    assert TOKEN not in shown
    for output in (text_buf.getvalue(), json_buf.getvalue()):
        assert TOKEN not in output, output
        assert "tok-1" in output


def test_control_characters_cannot_forge_log_lines(logger: logging.Logger) -> None:
    handler, buf = stream_handler("[%(request_id)s] %(message)s", ContextFilter())
    logger.addHandler(handler)
    in_request("cr-1", lambda: logger.info("user=%s", "ann\n[admin-req] INFO forged\r\x1b[2J"))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("[cr-1] user=ann")
    assert "\x1b" not in buf.getvalue()


# --------------------------------------------------------------------------- end to end


def test_uvicorn_starlette_json_logs_through_a_queue_listener() -> None:
    """200 concurrent requests with hostile, valid and missing ids; every JSON line agrees."""
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from asynclocal.web.starlette import install

    app_log = logging.getLogger("tests.logging.review.e2e")
    app_log.setLevel(logging.INFO)
    app_log.propagate = False
    q: queue.Queue[logging.LogRecord] = queue.Queue()
    qh = logging.handlers.QueueHandler(q)
    qh.addFilter(ContextFilter())
    app_log.addHandler(qh)
    buf = io.StringIO()
    target = logging.StreamHandler(buf)
    target.setFormatter(JsonFormatter())
    listener = logging.handlers.QueueListener(q, target)
    pool = ThreadPoolExecutor(max_workers=4)
    done = threading.Semaphore(0)

    def repository(n: str) -> None:
        app_log.info("repo", extra={"n": n, "seen": request_id()})

    async def after(n: str) -> None:
        await asyncio.sleep(random.random() / 500)
        app_log.info("after", extra={"n": n, "seen": request_id()})
        done.release()

    async def endpoint(request: Request) -> JSONResponse:
        n = request.path_params["n"]
        await asyncio.sleep(random.random() / 500)
        repository(n)
        await asyncio.get_running_loop().run_in_executor(
            pool, lambda: app_log.info("pool", extra={"n": n, "seen": request_id()})
        )
        return JSONResponse({"id": request_id()}, background=BackgroundTask(after, n))

    app = Starlette(routes=[Route("/items/{n}", endpoint)])
    install(app)

    def sent_id(i: int) -> str | None:
        return [f"e2e-{i}", None, f"bad\x7f{i}", "y" * 129][i % 4]

    async def fire(base: str) -> list[tuple[int, str | None, str, str]]:
        sem = asyncio.Semaphore(32)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def one(i: int) -> tuple[int, str | None, str, str]:
                sent = sent_id(i)
                headers = {"X-Request-ID": sent} if sent is not None else {}
                async with sem:
                    r = await client.get(f"/items/{i}", headers=headers)
                return i, sent, r.headers["x-request-id"], r.json()["id"]

            return await asyncio.gather(*(one(i) for i in range(200)))

    listener.start()
    try:
        with run_uvicorn(app) as base:
            results = asyncio.run(fire(base))
            for _ in range(200):
                assert done.acquire(timeout=10)
    finally:
        listener.stop()
        pool.shutdown(wait=True)
        app_log.removeHandler(qh)

    records = [json.loads(line) for line in buf.getvalue().splitlines()]
    by_n: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_n.setdefault(rec["n"], []).append(rec)
    for i, sent, echoed, body_id in results:
        assert echoed == body_id
        if sent is not None and sent.startswith("e2e-"):
            assert echoed == sent
        else:
            assert re.fullmatch(r"[0-9a-f]{32}", echoed)
        lines = by_n[str(i)]
        assert sorted(r["message"] for r in lines) == ["after", "pool", "repo"]
        for rec in lines:
            assert rec["request_id"] == rec["seen"] == echoed, rec
    assert "\x7f" not in buf.getvalue()
    assert "y" * 129 not in buf.getvalue()
