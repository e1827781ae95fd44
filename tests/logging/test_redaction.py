"""Secrets never reach any output; hostile values never break a line."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import queue
import re
import secrets
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from loguru import logger as loguru_logger

from asynclocal.logging import ContextFilter, Formatter, JsonFormatter, Redactor, escape_control
from asynclocal.logging.loguru import RequestContextPatcher
from asynclocal.logging.structlog import RequestContextProcessor
from asynclocal.request import RequestContext, request_storage

from .conftest import ListHandler

ACCESS = "at-" + secrets.token_hex(16)
REFRESH = "rt-" + secrets.token_hex(16)
PASSWORD = "pw-" + secrets.token_hex(8)
SESSION = "sess" + secrets.token_hex(8)
OPAQUE = "op" + secrets.token_hex(12)
JWT = f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI{secrets.token_hex(8)}.{secrets.token_hex(10)}"
REMEMBER = "rm" + secrets.token_hex(8)
SECRETS = (ACCESS, REFRESH, PASSWORD, SESSION, OPAQUE, JWT, REMEMBER)
HOSTILE = "acme\r\n2026-01-01 INFO [req-admin] forged\x1b[31m"


def _context() -> RequestContext:
    return RequestContext(
        "r-secret",
        headers={"authorization": f"Bearer {ACCESS}", "cookie": f"sessionid={SESSION}"},
        access_token=ACCESS,
        refresh_token=REFRESH,
        user={"id": "bob"},
        fields={"tenant": HOSTILE},
    )


def _assert_clean(output: str) -> None:
    leaked = [s for s in SECRETS if s in output]
    assert not leaked, f"secrets leaked: {leaked}\n{output}"
    assert "[REDACTED]" in output
    assert "\x1b" not in output
    assert "\r" not in output


def _stdlib_calls(log: logging.Logger) -> None:
    ctx = request_storage.get_store()
    assert ctx is not None
    log.info("login user=%s password=%s", "bob", PASSWORD)
    log.info("calling upstream with %s", ctx.access_token)
    log.info("headers %s", {"Authorization": f"Bearer {JWT}", "Cookie": f"sessionid={SESSION}"})
    log.info(
        "got tokens",
        extra={
            "access_token": ACCESS,
            "refresh_token": REFRESH,
            "headers": {"X-Api-Key": OPAQUE, "Accept": "json"},
        },
    )
    log.warning("Authorization: Bearer %s", OPAQUE)
    log.info("redirect to /cb?code=1&refresh_token=%s&theme=dark", REFRESH)
    log.info("cookie header: theme=dark; remember_me=%s", REMEMBER)
    log.info("context %r", ctx)
    log.info({"event": "dict message", "password": PASSWORD})
    log.info("bad input %s", "line1\r\nFAKE LINE\x1b[2J")
    try:
        raise RuntimeError(f"upstream rejected {ACCESS}")
    except RuntimeError:
        log.exception("call failed")


REDACTOR = Redactor(extra_keys=("remember_me",))


def test_stdlib_text_json_and_queue_outputs(make_logger: Callable[..., logging.Logger]) -> None:
    text = ListHandler(
        Formatter("%(request_id)s %(tenant)s %(levelname)s %(message)s", redact=REDACTOR)
    )
    text.addFilter(ContextFilter(fields=("tenant",), redact=REDACTOR))
    as_json = ListHandler(JsonFormatter(fields=("tenant",), redact=REDACTOR))
    as_json.addFilter(ContextFilter(fields=("tenant",), redact=REDACTOR))
    json_only = ListHandler(JsonFormatter(fields=("tenant",), redact=REDACTOR))  # no filter
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queue_handler = logging.handlers.QueueHandler(q)
    queue_handler.addFilter(ContextFilter(fields=("tenant",), redact=REDACTOR))
    # Masked where the record is prepared, in the logging request (as install() does).
    queue_handler.setFormatter(Formatter(redact=REDACTOR, escape=False))
    queued = ListHandler(Formatter("%(request_id)s %(tenant)s %(message)s", redact=REDACTOR))
    listener = logging.handlers.QueueListener(q, queued)
    log = make_logger(text, as_json, json_only, queue_handler)
    listener.start()
    try:
        request_storage.run(_context(), _stdlib_calls, log)
    finally:
        listener.stop()

    for handler in (text, as_json, json_only, queued):
        output = "\n".join(handler.lines)
        _assert_clean(output)
        assert len(handler.lines) == 11
        assert "theme=dark" in output  # only secrets are masked
    text_out = "\n".join(text.lines)
    assert "user=bob password=[REDACTED]" in text_out
    assert "r-secret acme\\r\\n2026-01-01 INFO [req-admin] forged\\x1b[31m INFO" in text_out
    assert "bad input line1\\r\\nFAKE LINE\\x1b[2J" in text_out
    assert "RuntimeError: upstream rejected [REDACTED]" in text_out  # traceback masked
    assert all(line.count("\n") == 0 for line in text.lines[:-1])  # only tracebacks span lines
    for line in as_json.lines + json_only.lines:
        record = json.loads(line)
        assert record["request_id"] == "r-secret"
        assert record["tenant"] in (HOSTILE, escape_control(HOSTILE))
    extras = json.loads(json_only.lines[3])
    assert extras["access_token"] == "[REDACTED]"
    assert extras["headers"] == {"X-Api-Key": "[REDACTED]", "Accept": "json"}


def test_structlog_output() -> None:
    out = io.StringIO()
    log = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[
            structlog.processors.format_exc_info,
            RequestContextProcessor(fields=("tenant",), redact=REDACTOR),
            structlog.processors.KeyValueRenderer(key_order=["request_id", "event"]),
        ],
    )

    def calls() -> None:
        log.info("login", user="bob", password=PASSWORD)
        log.info(f"calling upstream with {ACCESS}")
        log.info("headers", headers={"Authorization": f"Bearer {JWT}", "Cookie": SESSION})
        log.info("note", text=f"Authorization: Bearer {OPAQUE} refresh_token={REFRESH}")
        log.info("cookies", cookies={"remember_me": REMEMBER, "theme": "dark"})
        log.info("bad\r\ninput")
        try:
            raise RuntimeError(f"upstream rejected {ACCESS}")
        except RuntimeError:
            log.exception("call failed")

    request_storage.run(_context(), calls)

    output = out.getvalue()
    _assert_clean(output)
    assert "user='bob'" in output
    assert "request_id='r-secret'" in output
    assert len(re.findall(r"(?<![a-z_])request_id=", output)) == 7


def test_structlog_json_output() -> None:
    out = io.StringIO()
    log = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[
            RequestContextProcessor(fields=("tenant",)),
            structlog.processors.JSONRenderer(),
        ],
    )

    request_storage.run(_context(), log.info, "login", password=PASSWORD, token=ACCESS)
    log.info("outside")

    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    _assert_clean(out.getvalue())
    assert first["password"] == first["token"] == "[REDACTED]"
    assert first["tenant"] == escape_control(HOSTILE)
    assert (second["request_id"], second["tenant"]) == (None, None)


@pytest.fixture
def loguru_sinks() -> Any:
    text: list[str] = []
    serialized: list[str] = []
    tag = id(text)
    ids = [
        loguru_logger.add(
            lambda m: text.append(str(m)),
            format="{extra[request_id]} {extra[tenant]} {message}",
            filter=lambda r: r["extra"].get("sink") == tag,
        ),
        loguru_logger.add(
            lambda m: serialized.append(str(m)),
            serialize=True,
            filter=lambda r: r["extra"].get("sink") == tag,
        ),
    ]
    yield loguru_logger.bind(sink=tag), text, serialized
    for sink_id in ids:
        loguru_logger.remove(sink_id)


def test_loguru_outputs(loguru_sinks: Any) -> None:
    bound, text, serialized = loguru_sinks
    log = bound.patch(RequestContextPatcher(fields=("tenant",), redact=REDACTOR))

    def calls() -> None:
        log.info("login user={} password={}", "bob", PASSWORD)
        log.info("calling upstream with {}", ACCESS)
        log.bind(refresh_token=REFRESH, headers={"Cookie": SESSION}).info("bound")
        log.info("Authorization: Bearer {}", OPAQUE)
        log.info("jwt {} remember_me={}", JWT, REMEMBER)
        log.info("bad {}", "x\r\nFAKE")

    request_storage.run(_context(), calls)
    log.info("outside")

    _assert_clean("".join(text))
    _assert_clean("".join(serialized))
    assert len(text) == 7
    assert all(line.count("\n") == 1 for line in text)
    assert text[0].startswith("r-secret acme\\r\\n2026-01-01")
    assert text[-1] == "- - outside\n"
    record = json.loads(serialized[2])["record"]
    assert record["extra"]["refresh_token"] == "[REDACTED]"
    assert record["extra"]["request_id"] == "r-secret"


def test_redactor_rules() -> None:
    r = Redactor(extra_keys=("remember_me",), patterns=[r"\bcard-\d{4}\b"])
    assert r.redact_text("password=abc&x=1") == "password=[REDACTED]&x=1"
    assert r.redact_text('{"client_secret": "a b", "name": "n"}') == (
        '{"client_secret": "[REDACTED]", "name": "n"}'
    )
    assert r.redact_text("X-Api-Key: k1 Accept: json") == "X-Api-Key: [REDACTED] Accept: json"
    assert r.redact_text("paid with card-1234") == "paid with [REDACTED]"
    assert r.redact_text(f"Authorization: Basic {OPAQUE}") == "Authorization: [REDACTED]"
    assert r.redact_text(f"sent {JWT} upstream") == "sent [REDACTED] upstream"
    assert r.redact_text("query: access_token=zz") == "query: access_token=[REDACTED]"
    assert r.redact_text("author=bob status: ok") == "author=bob status: ok"
    once = r.redact_text(f"Cookie: sessionid={SESSION}; theme=dark")
    assert once == "Cookie: [REDACTED]; theme=dark"
    assert r.redact_text(once) == once  # idempotent: filter and formatter may both run
    assert r.redact_value({"remember_me": "x", "n": [{"password": "p"}]}) == {
        "remember_me": "[REDACTED]",
        "n": [{"password": "[REDACTED]"}],
    }
    assert r.is_secret_key("X-CSRF-Token")
    assert not r.is_secret_key("user_id")
    Point = __import__("collections").namedtuple("Point", "x y")
    assert r.redact_value(Point("password=1", 2)) == ("password=[REDACTED]", 2)


@pytest.mark.parametrize(
    "text", ["a=" * 50_000, "x:" * 50_000, 'k="' + "a" * 100_000, "password='" * 20_000]
)
def test_hostile_long_text_is_handled(text: str) -> None:
    # Deeply nested pairs and unclosed quotes: no RecursionError, no blow-up.
    assert isinstance(Redactor().redact_text(text), str)


def test_escape_control() -> None:
    assert escape_control("a\r\nb\x1b[0m\x00\u2028") == "a\\r\\nb\\x1b[0m\\x00\\u2028"
    assert escape_control("plain ünïcode") == "plain ünïcode"


def test_redaction_can_be_turned_off(make_logger: Callable[..., logging.Logger]) -> None:
    handler = ListHandler(Formatter("%(message)s", redact=False, escape=False))
    handler.addFilter(ContextFilter(redact=False, escape=False))
    log = make_logger(handler)

    log.info("password=%s", "plain")

    assert handler.lines == ["password=plain"]


def test_a_non_redacting_filter_upstream_does_not_disable_redaction(
    make_logger: Callable[..., logging.Logger],
) -> None:
    handler = ListHandler(Formatter("%(request_id)s %(message)s %(note)s"))
    handler.addFilter(ContextFilter())
    log = make_logger(handler)
    log.addFilter(ContextFilter(redact=False, escape=False))

    request_storage.run(
        _context(), log.info, "password=%s\nnext", PASSWORD, extra={"note": f"Bearer {OPAQUE}"}
    )

    assert handler.lines == ["r-secret password=[REDACTED]\\nnext Bearer [REDACTED]"]


def test_filtered_json_escapes_once_and_text_stays_one_line(
    make_logger: Callable[..., logging.Logger],
) -> None:
    as_json = ListHandler(JsonFormatter(fields=("tenant",)))
    as_json.addFilter(ContextFilter(fields=("tenant",)))
    text = ListHandler(Formatter("%(tenant)s %(message)s %(note)s"))
    text.addFilter(ContextFilter(fields=("tenant",)))
    log = make_logger(as_json, text)

    request_storage.run(
        _context(), log.info, "first\nsecond %s", "a\tb", extra={"note": "x\r\ny\x1b[2J"}
    )

    record = json.loads(as_json.lines[0])
    assert record["message"] == "first\nsecond a\tb"
    assert record["note"] == "x\r\ny\x1b[2J"
    assert record["tenant"] == HOSTILE
    assert "\n" not in as_json.lines[0]
    assert "\x1b" not in as_json.lines[0]
    assert text.lines == [
        "acme\\r\\n2026-01-01 INFO [req-admin] forged\\x1b[31m "
        "first\\nsecond a\\tb x\\r\\ny\\x1b[2J"
    ]


def test_the_filter_never_changes_what_other_handlers_see(
    make_logger: Callable[..., logging.Logger],
) -> None:
    # Masking and escaping happen in each formatter on its own copy: a handler
    # without them (Sentry, a raw file handler) sees the record as logged.
    seen: list[tuple[object, object, dict[str, object]]] = []

    class Raw(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.msg, record.args, dict(record.__dict__)))

    text = ListHandler(Formatter("%(request_id)s %(message)s %(note)s"))
    text.addFilter(ContextFilter())
    as_json = ListHandler(JsonFormatter())
    as_json.addFilter(ContextFilter())
    log = make_logger(text, as_json, Raw())

    def failing() -> None:
        try:
            raise ValueError(f"password: {PASSWORD}")
        except ValueError:
            log.exception("login password=%s\nnext", PASSWORD, extra={"note": f"token={OPAQUE}"})

    request_storage.run(_context(), failing)

    msg, args, attrs = seen[0]
    assert msg == "login password=%s\nnext"
    assert args == (PASSWORD,)
    assert attrs["note"] == f"token={OPAQUE}"
    assert attrs["exc_text"] is None or PASSWORD in str(attrs["exc_text"])
    assert attrs["request_id"] == "r-secret"
    _assert_clean("\n".join(text.lines))
    _assert_clean("\n".join(as_json.lines))
    record = json.loads(as_json.lines[0])
    assert record["message"] == "login password=[REDACTED]\nnext"
    assert record["exc_info"].splitlines()[-1] == "ValueError: password: [REDACTED]"


def test_json_escapes_what_json_writes_raw(
    make_logger: Callable[..., logging.Logger],
) -> None:
    # Without ensure_ascii, json.dumps writes U+2028 and DEL raw: they are
    # written as JSON escapes, so the line stays one line and parses back.
    handler = ListHandler(JsonFormatter(json_ensure_ascii=False))
    handler.addFilter(ContextFilter())
    log = make_logger(handler)

    log.info("a\u2028b\x7f\x9b")
    log.info("c\nd")

    assert json.loads(handler.lines[0])["message"] == "a\u2028b\x7f\x9b"
    assert json.loads(handler.lines[1])["message"] == "c\nd"
    assert all(len(line.splitlines()) == 1 for line in handler.lines)
    assert all(line.isprintable() for line in handler.lines)
