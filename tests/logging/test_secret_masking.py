"""Secrets (Authorization, Cookie, `password=`, JWTs in tracebacks, the request's own access
token) never reach any log output; control characters cannot forge lines.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import random
from collections.abc import Iterator
from typing import Any

import pytest

from asynclocal import current_request
from asynclocal.logging import ContextFilter, Formatter, JsonFormatter
from asynclocal.request import RequestContext, request_storage

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
    lg = logging.getLogger(f"tests.logging.masking.{random.random()}")
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
        JsonFormatter() if output == "json" else Formatter("[%(request_id)s] %(message)s")
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
        JsonFormatter() if output == "json" else Formatter("[%(request_id)s] %(message)s")
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
