"""ContextFilter, install(), dictConfig and JsonFormatter behaviour users rely on."""

from __future__ import annotations

import json
import logging
import logging.config
import subprocess
import sys
from collections.abc import Callable

import pytest

from asynclocal.logging import (
    ContextFilter,
    Formatter,
    JsonFormatter,
    Redactor,
    capturing_at_creation,
    install,
    stop_capture_at_creation,
    uninstall,
)
from asynclocal.request import RequestContext, request_storage

from .conftest import ListHandler

FMT = "%(request_id)s %(trace_id)s %(span_id)s %(user_id)s %(tenant)s | %(message)s"


def test_format_string_works_outside_a_request(make_logger: Callable[..., logging.Logger]) -> None:
    handler = ListHandler(Formatter(FMT))
    handler.addFilter(ContextFilter(fields=("tenant",)))
    log = make_logger(handler)

    log.warning("startup")

    assert handler.lines == ["- - - - - | startup"]


def test_custom_placeholder(make_logger: Callable[..., logging.Logger]) -> None:
    handler = ListHandler(Formatter("[%(request_id)s] %(message)s"))
    handler.addFilter(ContextFilter(placeholder="no-request"))
    log = make_logger(handler)

    log.info("boot")

    assert handler.lines == ["[no-request] boot"]


def test_fields_inside_a_request(make_logger: Callable[..., logging.Logger]) -> None:
    handler = ListHandler(Formatter(FMT))
    handler.addFilter(ContextFilter(fields=("tenant",)))
    log = make_logger(handler)
    ctx = RequestContext(
        "r-1",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
        user={"id": 42, "name": "bob"},
        fields={"tenant": "acme"},
    )

    request_storage.run(ctx, log.info, "hello")
    ctx2 = RequestContext("r-2")  # a missing app field and no user: placeholders
    request_storage.run(ctx2, log.info, "bye")

    assert handler.lines == [
        "r-1 4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7 42 acme | hello",
        "r-2 - - - - | bye",
    ]


def test_explicit_extra_wins(make_logger: Callable[..., logging.Logger]) -> None:
    handler = ListHandler(Formatter("%(request_id)s %(message)s"))
    handler.addFilter(ContextFilter())
    log = make_logger(handler)

    request_storage.run(RequestContext("r-1"), log.info, "x", extra={"request_id": "job-9"})

    assert handler.lines == ["job-9 x"]


def test_explicit_extra_is_escaped(make_logger: Callable[..., logging.Logger]) -> None:
    handler = ListHandler(Formatter("%(request_id)s %(message)s"))
    handler.addFilter(ContextFilter())
    log = make_logger(handler)

    log.info("x", extra={"request_id": "job\r\nforged"})

    assert handler.lines == ["job\\r\\nforged x"]


def test_values_are_captured_when_logged_not_when_formatted(
    make_logger: Callable[..., logging.Logger],
) -> None:
    handler = ListHandler(Formatter("%(request_id)s %(tenant)s"))
    flt = ContextFilter(fields=("tenant",))
    handler.addFilter(flt)
    ctx = RequestContext("r-1", fields={"tenant": "acme"})
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)

    request_storage.run(ctx, flt.filter, record)
    ctx.set("tenant", "changed")

    assert handler.format(record) == "r-1 acme"  # formatted later, outside the request


def test_logger_filter_misses_child_records_handler_filter_does_not(
    make_logger: Callable[..., logging.Logger], capsys: pytest.CaptureFixture[str]
) -> None:
    # Documented: a logger filter only sees records logged through that logger.
    handler = ListHandler(Formatter("%(message)s %(request_id)s"))
    parent = make_logger(handler)
    parent.addFilter(ContextFilter())
    child = logging.getLogger(parent.name + ".child")

    def log_both() -> None:
        parent.info("parent")
        child.info("child")

    request_storage.run(RequestContext("r-1"), log_both)
    assert handler.lines == ["parent r-1"]  # the child's line failed to format
    assert "request_id" in capsys.readouterr().err

    handler.addFilter(ContextFilter())
    request_storage.run(RequestContext("r-2"), log_both)
    assert handler.lines[1:] == ["parent r-2", "child r-2"]


def test_install_attaches_to_every_root_handler_once() -> None:
    root = logging.getLogger()
    a, b = ListHandler(Formatter("%(request_id)s %(message)s")), ListHandler()
    old_level = root.level
    factory_before = logging.getLogRecordFactory()
    root.addHandler(a)
    root.addHandler(b)
    root.setLevel(logging.INFO)
    try:
        first = install(fields=("tenant",))
        second = install(fields=("tenant",))
        assert [f for f in a.filters if isinstance(f, ContextFilter)] == [second]
        assert [f for f in b.filters if isinstance(f, ContextFilter)] == [second]
        assert first is not second
        request_storage.run(RequestContext("r-7"), logging.getLogger("any.module").info, "hi")
        assert a.lines[-1] == "r-7 hi"
        assert capturing_at_creation()
        record = request_storage.run(
            RequestContext("r-8"), logging.makeLogRecord, {"msg": "made in r-8"}
        )
        assert record.__dict__["_asynclocal_context"]["request_id"] == "r-8"
        uninstall()
        assert not a.filters
        assert not b.filters
        assert not capturing_at_creation()
        assert logging.getLogRecordFactory() is factory_before
    finally:
        stop_capture_at_creation()
        root.removeHandler(a)
        root.removeHandler(b)
        root.setLevel(old_level)


def test_install_without_handlers_says_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"basicConfig\(\) or logging.config.dictConfig"):
        install(logging.getLogger("asynclocal.tests.no.handlers"))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"fields": "tenant"}, TypeError),
        ({"fields": ("not an identifier",)}, ValueError),
        ({"fields": ("msg",)}, ValueError),
        ({"fields": ("request_id",)}, ValueError),
        ({"fields": (1,)}, TypeError),
        ({"placeholder": None}, TypeError),
        ({"redact": "yes"}, TypeError),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        ContextFilter(**kwargs)  # type: ignore[arg-type]


def test_redactor_validates() -> None:
    with pytest.raises(TypeError, match="not one str"):
        Redactor(extra_keys="remember_me")
    with pytest.raises(ValueError, match="regular expression"):
        Redactor(patterns=["(unclosed"])


def test_dict_config_from_the_readme(capsys: pytest.CaptureFixture[str]) -> None:
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": "asynclocal.logging.ContextFilter", "fields": ["tenant"]}},
        "formatters": {
            "text": {"format": "%(levelname)s [%(request_id)s] %(name)s: %(message)s"},
            "json": {"()": "asynclocal.logging.JsonFormatter", "fields": ["tenant"]},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "filters": ["request"],
                "formatter": "text",
            },
            "json": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "filters": ["request"],
                "formatter": "json",
            },
        },
        "loggers": {
            "asynclocal.tests.dictconfig": {"level": "INFO", "handlers": ["console", "json"]}
        },
    }
    logging.config.dictConfig(config)
    log = logging.getLogger("asynclocal.tests.dictconfig")
    try:
        request_storage.run(RequestContext("r-42", fields={"tenant": "acme"}), log.info, "paid")
        log.info("idle")
    finally:
        for handler in list(log.handlers):
            log.removeHandler(handler)
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "INFO [r-42] asynclocal.tests.dictconfig: paid",
        "INFO [-] asynclocal.tests.dictconfig: idle",
    ]
    first, second = (json.loads(line) for line in err.splitlines())
    assert (first["request_id"], first["tenant"], first["message"]) == ("r-42", "acme", "paid")
    assert (second["request_id"], second["tenant"]) == (None, None)


def test_json_formatter_options(make_logger: Callable[..., logging.Logger]) -> None:
    handler = ListHandler(
        JsonFormatter(
            ["levelname", "message"],
            placeholder="-",
            rename_fields={"request_id": "req"},
            static_fields={"service": "payments"},
        )
    )
    log = make_logger(handler)

    request_storage.run(RequestContext("r-1"), log.error, "boom")
    log.error("outside")

    first, second = (json.loads(line) for line in handler.lines)
    assert first == {
        "levelname": "ERROR",
        "message": "boom",
        "service": "payments",
        "req": "r-1",
        "trace_id": "-",
        "span_id": "-",
        "user_id": "-",
        "root_request_id": "r-1",
        "parent_request_id": "-",
    }
    assert second["req"] == "-"


_MISSING_EXTRA = """
import sys
for name in ("pythonjsonlogger", "structlog", "loguru"):
    sys.modules[name] = None  # as if the extra were not installed
import asynclocal.logging  # stdlib only: must still import
for stmt in ("from asynclocal.logging import JsonFormatter",
             "import asynclocal.logging.structlog",
             "import asynclocal.logging.loguru"):
    try:
        exec(stmt)
    except ImportError as exc:
        print(exc)
    else:
        print("imported")
"""


def test_missing_extras_raise_import_error_naming_the_extra() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _MISSING_EXTRA], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert "pip install 'asynclocal[json-logging]'" in lines[0]
    assert "pip install 'asynclocal[structlog]'" in lines[1]
    assert "pip install 'asynclocal[loguru]'" in lines[2]


def test_json_formatter_class_form_in_dict_config(capsys: pytest.CaptureFixture[str]) -> None:
    # {"class": ...} without "format" passes fmt=None: the default fields, not an empty line.
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"class": "asynclocal.logging.JsonFormatter"}},
            "handlers": {
                "out": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stdout",
                    "formatter": "json",
                }
            },
            "loggers": {"asynclocal.tests.jsonclass": {"level": "INFO", "handlers": ["out"]}},
        }
    )
    log = logging.getLogger("asynclocal.tests.jsonclass")
    try:
        request_storage.run(RequestContext("r-5"), log.info, "paid %s", 3)
    finally:
        for handler in list(log.handlers):
            log.removeHandler(handler)
    record = json.loads(capsys.readouterr().out)
    assert record["message"] == "paid 3"
    assert (record["levelname"], record["request_id"]) == ("INFO", "r-5")


def test_install_gives_plain_handlers_masking_formatters_and_leaves_others_alone() -> None:
    from pythonjsonlogger.json import JsonFormatter as ForeignJson

    root = logging.getLogger()
    plain = ListHandler(logging.Formatter("%(levelname)s [%(request_id)s] %(message)s"))
    bare = ListHandler()
    foreign = ListHandler(ForeignJson(["message"]))
    ours = JsonFormatter()
    own = ListHandler(ours)
    handlers = (plain, bare, foreign, own)
    old_level = root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    seen: list[logging.LogRecord] = []
    try:
        install()
        assert isinstance(plain.formatter, Formatter)
        assert own.formatter is ours

        class Raw(logging.Handler):  # added later, without any cleaning
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record)

        raw = Raw()
        root.addHandler(raw)
        try:
            request_storage.run(
                RequestContext("r-9"),
                logging.getLogger("app").info,
                "pw password=%s\nx",
                "hunter2X",
            )
        finally:
            root.removeHandler(raw)
        assert plain.lines[-1] == "INFO [r-9] pw password=[REDACTED]\\nx"
        assert bare.lines[-1] == "pw password=[REDACTED]\\nx"
        assert json.loads(foreign.lines[-1])["message"] == "pw password=[REDACTED]\nx"
        assert json.loads(own.lines[-1])["message"] == "pw password=[REDACTED]\nx"
        assert seen[0].getMessage() == "pw password=hunter2X\nx"  # the shared record is intact
        assert seen[0].__dict__["request_id"] == "r-9"
    finally:
        uninstall()
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="per-handler record replacement: 3.12+")
def test_a_cleaning_filter_hands_only_its_handler_a_masked_copy(
    make_logger: Callable[..., logging.Logger],
) -> None:
    masked = ListHandler(logging.Formatter("%(message)s"))
    masked.addFilter(ContextFilter())
    raw = ListHandler(logging.Formatter("%(message)s"))
    log = make_logger(masked, raw)

    log.info("token=%s", "abcdefgh1234")

    assert masked.lines == ["token=[REDACTED]"]
    assert raw.lines == ["token=abcdefgh1234"]
