"""Server log lines carry the request: failed requests, the access line, one logging config."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Callable, Iterator

import pytest

from asynclocal.logging import (
    AccessLog,
    ContextFilter,
    Formatter,
    JsonFormatter,
    capture_at_creation,
    logging_config,
    stop_capture_at_creation,
)
from asynclocal.request import RequestContext, request_storage
from asynclocal.request._failed import failed_request, mark_failed_request

from .conftest import ListHandler


def _failed(rid: str) -> BaseException:
    ctx = RequestContext(rid)
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        mark_failed_request(exc, ctx)
        return exc


@pytest.mark.parametrize("at_creation", [True, False], ids=["factory", "filter-only"])
def test_a_servers_traceback_record_carries_the_failed_request(
    make_logger: Callable[..., logging.Logger], at_creation: bool
) -> None:
    text = ListHandler(Formatter("%(request_id)s %(message)s"))
    text.addFilter(ContextFilter())
    as_json = ListHandler(JsonFormatter())  # no filter: reads the record itself
    log = make_logger(text, as_json)
    if at_creation:
        capture_at_creation()
    try:
        for rid in ("r-a", "r-b"):
            log.error("Exception in ASGI application\n", exc_info=_failed(rid))
        log.info("between requests")
    finally:
        stop_capture_at_creation()

    assert [line.split(" ", 1)[0] for line in text.lines] == ["r-a", "r-b", "-"]
    assert [json.loads(line)["request_id"] for line in as_json.lines] == ["r-a", "r-b", None]


def test_the_current_request_wins_and_marks_are_innermost() -> None:
    exc = _failed("inner")
    mark_failed_request(exc, RequestContext("outer"))
    ctx = failed_request((type(exc), exc, exc.__traceback__))
    assert ctx is not None
    assert ctx.request_id == "inner"
    assert failed_request(None) is None
    assert failed_request(ValueError()) is None


@pytest.fixture
def access_lines() -> Iterator[tuple[AccessLog, ListHandler]]:
    handler = ListHandler(JsonFormatter())
    handler.addFilter(ContextFilter())
    log = logging.getLogger("asynclocal.tests.access")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield AccessLog(log), handler
    log.removeHandler(handler)


def test_the_access_line_is_one_structured_record_with_the_ids(
    access_lines: tuple[AccessLog, ListHandler],
) -> None:
    access, handler = access_lines
    ctx = RequestContext("r-acc", method="GET", path="/items/7", user={"id": "u-1"})
    ctx.route = "/items/{id}"
    ctx.ensure_trace()
    request_storage.run(
        ctx,
        access.emit,
        ctx,
        method="GET",
        path="/items/7?token=abcdefgh123",
        status=404,
        response_bytes=12,
        duration=0.0031,
    )
    access.emit(ctx, method="POST", path="/x", status=503, response_bytes=0, duration=0.5)

    first, second = (json.loads(line) for line in handler.lines)
    assert first["request_id"] == "r-acc"
    assert first["user_id"] == "u-1"
    assert first["trace_id"]
    assert first["root_request_id"] == "r-acc"
    assert first["http_method"] == "GET"
    assert first["http_route"] == "/items/{id}"
    assert first["http_path"] == "/items/7?token=[REDACTED]"
    assert first["http_status"] == 404
    assert first["response_bytes"] == 12
    assert first["duration_ms"] == pytest.approx(3.1)
    assert first["levelname"] == "WARNING"
    assert first["message"] == "GET /items/7?token=[REDACTED] 404 12B 3.1ms"
    assert second["request_id"] == "r-acc"  # made current for the call
    assert second["levelname"] == "ERROR"


def test_access_log_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="Logger or a name"):
        AccessLog(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_logging_config_routes_server_loggers_through_one_handler(as_json: bool) -> None:
    stream = io.StringIO()
    names = ("uvicorn.error", "uvicorn.access", "gunicorn.error", "celery.app.trace")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in names}
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    # a server's own setup first, as uvicorn's default config makes it
    logging.getLogger("uvicorn.error").addHandler(logging.StreamHandler(io.StringIO()))
    logging.getLogger("uvicorn.error").propagate = False
    try:
        config = logging_config(json=as_json, server_access_logs=False)
        config["handlers"]["asynclocal"]["stream"] = stream
        logging.config.dictConfig(config)
        ctx = RequestContext("r-cfg")
        request_storage.run(
            ctx,
            logging.getLogger("uvicorn.error").info,
            "ready",
            extra={"color_message": "\x1b[32mready\x1b[0m"},
        )
        logging.getLogger("uvicorn.access").info("GET / 200")  # silenced
        logging.getLogger("celery.app.trace").warning("task line")
    finally:
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate = propagate
            logger.setLevel(logging.NOTSET)
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved_root[0]:
            root.addHandler(handler)
        root.setLevel(saved_root[1])

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "\x1b" not in stream.getvalue()
    assert "\\u001b" not in stream.getvalue()
    if as_json:
        first, second = (json.loads(line) for line in lines)
        assert (first["request_id"], first["message"], first["name"]) == (
            "r-cfg",
            "ready",
            "uvicorn.error",
        )
        assert "color_message" not in first
        assert second["request_id"] is None
    else:
        assert "[r-cfg] uvicorn.error: ready" in lines[0]
        assert "[-] celery.app.trace: task line" in lines[1]


def test_the_asgi_middleware_marks_a_failed_request_and_leaves_no_context_behind() -> None:
    import asyncio

    from asynclocal.request._failed import failed_request
    from asynclocal.web.asgi import RequestContextMiddleware

    async def app(scope: object, receive: object, send: object) -> None:
        raise RuntimeError("boom")

    middleware = RequestContextMiddleware(app)  # type: ignore[arg-type]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def one_task_two_requests() -> list[str | None]:
        seen: list[str | None] = []
        for rid in ("r-1", "r-2"):
            scope = {
                "type": "http", "method": "GET", "path": "/x", "query_string": b"",
                "headers": [(b"x-request-id", rid.encode())], "client": ("127.0.0.1", 1),
            }  # fmt: skip
            try:
                await middleware(scope, receive, send)  # type: ignore[arg-type]
            except RuntimeError as exc:
                ctx = failed_request(exc)
                seen.append(None if ctx is None else ctx.request_id)
            assert request_storage.get_store() is None  # nothing left for the next one
        return seen

    assert asyncio.run(one_task_two_requests()) == ["r-1", "r-2"]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [500, 500]
