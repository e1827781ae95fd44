"""Log formats: `%(request_id)s` outside a request, placeholders, a basic root, JSON keys."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import random
from collections.abc import Iterator
from typing import Any

import pytest

import asynclocal.logging
from asynclocal import current_request
from asynclocal.logging import ContextFilter, Formatter, JsonFormatter
from asynclocal.request import RequestContext, request_storage

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """An isolated logger (no propagation) that each test gives its own handlers."""
    lg = logging.getLogger(f"tests.logging.formats.{random.random()}")
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
    handler.setFormatter(Formatter(fmt))
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
