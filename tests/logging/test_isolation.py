"""Every line carries its own request's id: repository three calls deep, thread-pool
job and background task, under many concurrent requests with random awaits."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import queue
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from loguru import logger as loguru_logger

from asynclocal.logging import (
    ContextFilter,
    Formatter,
    JsonFormatter,
    capture_at_creation,
    stop_capture_at_creation,
)
from asynclocal.logging.loguru import RequestContextPatcher, patcher
from asynclocal.logging.structlog import add_request_context
from asynclocal.request import RequestContext, request_storage
from asynclocal.threads import ThreadPoolExecutor

from .conftest import ListHandler, check_lines, simulate_requests

N = 200


def _split(line: str) -> tuple[str, str, str]:
    captured, kind, expect = line.split("|")
    return captured, expect, kind


async def test_stdlib_text_filter_on_handler(make_logger: Callable[..., logging.Logger]) -> None:
    handler = ListHandler(Formatter("%(request_id)s|%(message)s"))
    handler.addFilter(ContextFilter())
    log = make_logger(handler)

    ids = await simulate_requests(lambda kind, rid: log.info("%s|%s", kind, rid), N)

    check_lines([_split(line) for line in handler.lines], ids)
    assert len(handler.lines) == N * 4


async def test_stdlib_filter_on_logger(make_logger: Callable[..., logging.Logger]) -> None:
    handler = ListHandler(Formatter("%(request_id)s|%(message)s"))
    log = make_logger(handler)
    log.addFilter(ContextFilter())

    ids = await simulate_requests(lambda kind, rid: log.info("%s|%s", kind, rid), N, seed=11)

    check_lines([_split(line) for line in handler.lines], ids)


async def test_json_formatter(make_logger: Callable[..., logging.Logger]) -> None:
    handler = ListHandler(JsonFormatter())
    handler.addFilter(ContextFilter())
    log = make_logger(handler)

    ids = await simulate_requests(lambda kind, rid: log.info(kind, extra={"expect": rid}), N)

    records = [json.loads(line) for line in handler.lines]
    check_lines([(r["request_id"], r["expect"], r["message"]) for r in records], ids)
    assert {"asctime", "levelname", "name", "trace_id", "span_id", "user_id"} <= set(records[0])


async def test_json_formatter_without_filter(make_logger: Callable[..., logging.Logger]) -> None:
    # A synchronous handler formats in the logging task: the formatter alone suffices.
    handler = ListHandler(JsonFormatter())
    log = make_logger(handler)

    ids = await simulate_requests(lambda kind, rid: log.info(kind, extra={"expect": rid}), 50)

    records = [json.loads(line) for line in handler.lines]
    check_lines([(r["request_id"], r["expect"], r["message"]) for r in records], ids)


async def test_queue_handler_and_listener_log_the_right_request(
    make_logger: Callable[..., logging.Logger],
) -> None:
    # The filter sits on the QueueHandler (captures in the logging thread/task);
    # the listener thread formats later, with no request context of its own.
    text = ListHandler(Formatter("%(request_id)s|%(message)s"))
    text.addFilter(ContextFilter())  # a second filter must not overwrite the capture
    as_json = ListHandler(JsonFormatter())
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queue_handler = logging.handlers.QueueHandler(q)
    queue_handler.addFilter(ContextFilter())
    listener = logging.handlers.QueueListener(q, text, as_json, respect_handler_level=True)
    log = make_logger(queue_handler)
    listener.start()
    try:
        ids = await simulate_requests(lambda kind, rid: log.info("%s|%s", kind, rid), N, seed=3)
    finally:
        listener.stop()

    check_lines([_split(line) for line in text.lines], ids)
    pairs = []
    for line in as_json.lines:
        record = json.loads(line)
        kind, expect = record["message"].split("|")
        pairs.append((record["request_id"], expect, kind))
    check_lines(pairs, ids)


async def test_structlog_processor() -> None:
    out = io.StringIO()
    log = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[add_request_context, structlog.processors.JSONRenderer()],
    )

    ids = await simulate_requests(lambda kind, rid: log.info(kind, expect=rid), N)

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    check_lines([(r["request_id"], r["expect"], r["event"]) for r in records], ids)
    assert {"trace_id", "span_id", "user_id"} <= set(records[0])


@pytest.fixture
def loguru_lines() -> Any:
    lines: list[str] = []
    sink_id = loguru_logger.add(
        lambda message: lines.append(str(message).rstrip("\n")),
        format="{extra[request_id]}|{message}",
        filter=lambda record: record["extra"].get("sink") == id(lines),
        level="DEBUG",
    )
    yield loguru_logger.bind(sink=id(lines)), lines
    loguru_logger.remove(sink_id)


async def test_loguru_patcher(loguru_lines: Any) -> None:
    bound, lines = loguru_lines
    log = bound.patch(RequestContextPatcher())

    ids = await simulate_requests(lambda kind, rid: log.info("{}|{}", kind, rid), N)

    check_lines([_split(line) for line in lines], ids)


async def test_loguru_enqueue_keeps_the_request() -> None:
    # enqueue=True writes from loguru's worker thread: the patcher ran before.
    lines: list[str] = []
    sink_id = loguru_logger.add(
        lambda message: lines.append(str(message).rstrip("\n")),
        format="{extra[request_id]}|{message}",
        filter=lambda record: record["extra"].get("sink") == id(lines),
        enqueue=True,
    )
    try:
        log = loguru_logger.bind(sink=id(lines)).patch(RequestContextPatcher())
        ids = await simulate_requests(lambda kind, rid: log.info("{}|{}", kind, rid), 60)
        await loguru_logger.complete()
    finally:
        loguru_logger.remove(sink_id)

    check_lines([_split(line) for line in lines], ids)


@pytest.fixture
def at_creation() -> Any:
    capture_at_creation()
    yield
    stop_capture_at_creation()


async def test_filter_only_on_listener_side_with_capture_at_creation(
    make_logger: Callable[..., logging.Logger], at_creation: None
) -> None:
    # The common mistake: the filter sits on the listener's handler only. With
    # capture_at_creation() (which install() enables) the records carry their request.
    text = ListHandler(Formatter("%(request_id)s|%(message)s"))
    text.addFilter(ContextFilter())
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, text)
    log = make_logger(logging.handlers.QueueHandler(q))
    listener.start()
    try:
        ids = await simulate_requests(lambda kind, rid: log.info("%s|%s", kind, rid), N, seed=5)
    finally:
        listener.stop()

    check_lines([_split(line) for line in text.lines], ids)


def test_a_record_filtered_in_another_request_thread_keeps_its_own_request(
    make_logger: Callable[..., logging.Logger],
) -> None:
    # A record created in request A and filtered later in a thread serving request
    # B must never show B: with no capture it shows the placeholder instead.
    relay: list[logging.LogRecord] = []

    class Relay(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            relay.append(record)

    log = make_logger(Relay())
    target = ListHandler(Formatter("%(request_id)s|%(message)s"))
    target.addFilter(ContextFilter())
    request_storage.run(RequestContext("req-A"), log.info, "from A")

    def replay() -> None:
        for record in relay:
            target.handle(record)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(request_storage.run, RequestContext("req-B"), replay).result(timeout=10)

    assert target.lines == ["-|from A"]


async def test_structlog_processor_formatter_behind_a_queue(
    make_logger: Callable[..., logging.Logger],
) -> None:
    # stdlib records rendered by structlog's ProcessorFormatter in the listener thread.
    out = ListHandler(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[add_request_context],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queue_handler = logging.handlers.QueueHandler(q)
    queue_handler.addFilter(ContextFilter())
    listener = logging.handlers.QueueListener(q, out)
    log = make_logger(queue_handler)
    listener.start()
    try:
        ids = await simulate_requests(lambda kind, rid: log.info("%s|%s", kind, rid), 100)
    finally:
        listener.stop()

    pairs = []
    for line in out.lines:
        record = json.loads(line)
        kind, expect = record["event"].split("|")
        pairs.append((record["request_id"], expect, kind))
    check_lines(pairs, ids)


def test_loguru_configure_patcher_and_placeholder_outside_a_request() -> None:
    lines: list[str] = []
    sink_id = loguru_logger.add(
        lambda message: lines.append(str(message).rstrip("\n")),
        format="[{extra[request_id]}] {message}",
        filter=lambda record: record["extra"].get("sink") == id(lines),
    )
    loguru_logger.configure(patcher=patcher)  # the documented global setup
    try:
        log = loguru_logger.bind(sink=id(lines))
        log.info("boot")
        request_storage.run(RequestContext("r-1"), log.info, "served")
    finally:
        loguru_logger.configure(patcher=lambda record: None)  # configure() cannot unset it
        loguru_logger.remove(sink_id)

    assert lines == ["[-] boot", "[r-1] served"]


@pytest.mark.parametrize("factory", [False, True])
async def test_json_formatter_alone_behind_a_queue(
    make_logger: Callable[..., logging.Logger], factory: bool
) -> None:
    # No ContextFilter anywhere: with capture_at_creation() each line has its own
    # request; without it the listener thread writes null, never another request.
    as_json = ListHandler(JsonFormatter())
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, as_json)
    log = make_logger(logging.handlers.QueueHandler(q))
    if factory:
        capture_at_creation()
    listener.start()
    try:
        ids = await simulate_requests(lambda kind, rid: log.info("%s|%s", kind, rid), 50)
    finally:
        listener.stop()
        stop_capture_at_creation()

    pairs = []
    for line in as_json.lines:
        record = json.loads(line)
        kind, expect = record["message"].split("|")
        pairs.append((record["request_id"], expect, kind))
    if factory:
        check_lines(pairs, ids)
    else:
        assert len(pairs) == 200
        assert {got for got, _, _ in pairs} == {None}
