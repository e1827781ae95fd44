"""Cost of per-request logging fields, per emitted line, against the raw stdlib and peers.

Run: .venv/bin/python benchmarks/bench_logging.py  (about a minute)

(No record factory is installed: `capture_at_creation()` would run for the
baseline's records too; the filter captures instead, at the same cost.)

Every configuration logs the same call inside a request into an in-memory
stream; configurations are interleaved and the best of several rounds is kept,
so a noisy shared machine affects them alike; the clock is the process's CPU
time, which other processes on a shared machine do not inflate. Peers: asgi-correlation-id's
`CorrelationIdFilter` (one id, no redaction) and structlog's
`merge_contextvars` (ids bound with `bound_contextvars`, no redaction). Ratios
are against the stdlib text line (text rows), python-json-logger (JSON rows)
and structlog without context (structlog rows), all measured in the same run.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable

import structlog
from asgi_correlation_id import CorrelationIdFilter
from asgi_correlation_id.context import correlation_id
from pythonjsonlogger.json import JsonFormatter as PlainJsonFormatter
from structlog.contextvars import bound_contextvars, merge_contextvars

from asynclocal.logging import (
    ContextFilter,
    Formatter,
    JsonFormatter,
)
from asynclocal.logging.structlog import add_request_context
from asynclocal.request import RequestContext, request_storage

LINES = 300
ROUNDS = 150
CALL = ("payment %s captured for order %s", 123, "o-9")
KV_CALL = ("GET %s status=%d token=%s", "/payments/1", 200, "tok-1234567890")
PLAIN = "%(asctime)s %(levelname)s %(name)s %(message)s"
WITH_ID = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
CID_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"


def _logger(name: str, setup: Callable[[logging.Handler], object]) -> Callable[..., None]:
    log = logging.getLogger(f"bench.logging.{name}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.StreamHandler(io.StringIO())
    setup(handler)
    log.addHandler(handler)
    return log.info


def _fmt(
    formatter: logging.Formatter, *filters: logging.Filter
) -> Callable[[logging.Handler], None]:
    def setup(handler: logging.Handler) -> None:
        handler.setFormatter(formatter)
        for flt in filters:
            handler.addFilter(flt)

    return setup


def _structlog(*processors: Callable[..., object]) -> Callable[..., None]:
    log = structlog.wrap_logger(
        structlog.PrintLogger(io.StringIO()),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            *processors,
            structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"]),
        ],
        cache_logger_on_first_use=True,
    )

    def info(msg: str, *args: object) -> None:
        log.info(msg % args)

    return info


def main() -> None:
    configs: dict[str, tuple[str, Callable[..., None], tuple[object, ...]]] = {
        "stdlib text (baseline)": ("text", _logger("plain", _fmt(logging.Formatter(PLAIN))), CALL),
        "asgi-correlation-id CorrelationIdFilter": (
            "text",
            _logger("cid", _fmt(logging.Formatter(CID_FORMAT), CorrelationIdFilter())),
            CALL,
        ),
        "ContextFilter, stdlib Formatter (ids only)": (
            "text",
            _logger(
                "bare",
                _fmt(logging.Formatter(WITH_ID), ContextFilter(redact=False, escape=False)),
            ),
            CALL,
        ),
        "ContextFilter + Formatter (ids, redaction, escaping)": (
            "text",
            _logger("full", _fmt(Formatter(WITH_ID), ContextFilter(redact=False, escape=False))),
            CALL,
        ),
        "  same, message holding token=...": (
            "text",
            _logger("kv", _fmt(Formatter(WITH_ID), ContextFilter(redact=False, escape=False))),
            KV_CALL,
        ),
        "python-json-logger JsonFormatter (baseline)": (
            "json",
            _logger("pjson", _fmt(PlainJsonFormatter(["asctime", "levelname", "name", "message"]))),
            CALL,
        ),
        "asynclocal JsonFormatter + ContextFilter": (
            "json",
            _logger("ajson", _fmt(JsonFormatter(), ContextFilter(redact=False, escape=False))),
            CALL,
        ),
        "structlog, no context (baseline)": ("structlog", _structlog(), CALL),
        "structlog merge_contextvars": ("structlog", _structlog(merge_contextvars), CALL),
        "structlog add_request_context (redaction on)": (
            "structlog",
            _structlog(add_request_context),
            CALL,
        ),
    }
    best = dict.fromkeys(configs, float("inf"))
    ctx = RequestContext("3f2a9c1e5b7d4f60a1b2c3d4e5f60718", access_token="t" * 32)
    ctx.user = {"id": "u-42"}
    token = correlation_id.set(ctx.request_id)
    try:
        with bound_contextvars(request_id=ctx.request_id, user_id="u-42", trace_id="0" * 32):
            for _ in range(ROUNDS):
                for name, (_kind, info, call) in configs.items():

                    def run(
                        info: Callable[..., None] = info, call: tuple[object, ...] = call
                    ) -> None:
                        for _ in range(LINES):
                            info(*call)

                    start = time.process_time()
                    request_storage.run(ctx, run)
                    best[name] = min(best[name], (time.process_time() - start) / LINES * 1e6)
    finally:
        correlation_id.reset(token)
    bases = {
        "text": best["stdlib text (baseline)"],
        "json": best["python-json-logger JsonFormatter (baseline)"],
        "structlog": best["structlog, no context (baseline)"],
    }
    cid = best["asgi-correlation-id CorrelationIdFilter"]
    print(f"{'configuration':54s} {'µs/line':>8s} {'vs baseline':>12s} {'vs cid':>8s}")
    for name, (kind, _info, _call) in configs.items():
        value = best[name]
        print(f"{name:54s} {value:8.2f} {value / bases[kind]:11.2f}x {value / cid:7.2f}x")


if __name__ == "__main__":
    main()
