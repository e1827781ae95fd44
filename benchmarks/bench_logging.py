"""Cost of per-request logging fields, per emitted line, against the raw stdlib and a peer.

Run: .venv/bin/python benchmarks/bench_logging.py  (about half a minute)

Every configuration logs the same call inside a request into an in-memory
stream; configurations are interleaved and the best of several rounds is kept,
so a noisy shared machine affects them alike. Peer: asgi-correlation-id's
`CorrelationIdFilter` (adds one id, no redaction).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable

from asgi_correlation_id import CorrelationIdFilter
from asgi_correlation_id.context import correlation_id
from pythonjsonlogger.json import JsonFormatter as PlainJsonFormatter

from asynclocal.logging import ContextFilter, JsonFormatter
from asynclocal.request import RequestContext, request_storage

LINES = 2000
ROUNDS = 25
CALL = ("payment %s captured for order %s", 123, "o-9")
KV_CALL = ("GET %s status=%d user=%s", "/payments/1", 200, "bob")
CID_FORMAT = "%(asctime)s %(levelname)s [%(correlation_id)s] %(message)s"


def _logger(name: str, setup: Callable[[logging.Handler], object]) -> logging.Logger:
    log = logging.getLogger(f"bench.logging.{name}")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.StreamHandler(io.StringIO())
    setup(handler)
    log.addHandler(handler)
    return log


def _fmt(text: str) -> Callable[[logging.Handler], object]:
    return lambda h: h.setFormatter(logging.Formatter(text))


def main() -> None:
    plain = "%(asctime)s %(levelname)s %(message)s"
    with_id = "%(asctime)s %(levelname)s [%(request_id)s] %(message)s"
    configs: dict[str, tuple[logging.Logger, tuple[object, ...]]] = {
        "stdlib text (baseline)": (_logger("plain", _fmt(plain)), CALL),
        "asgi-correlation-id CorrelationIdFilter": (
            _logger(
                "cid",
                lambda h: (
                    h.setFormatter(logging.Formatter(CID_FORMAT)),
                    h.addFilter(CorrelationIdFilter()),
                ),
            ),
            CALL,
        ),
        "ContextFilter(redact=False, escape=False)": (
            _logger(
                "bare",
                lambda h: (
                    _fmt(with_id)(h),
                    h.addFilter(ContextFilter(redact=False, escape=False)),
                ),
            ),
            CALL,
        ),
        "ContextFilter() (redaction + escaping)": (
            _logger("full", lambda h: (_fmt(with_id)(h), h.addFilter(ContextFilter()))),
            CALL,
        ),
        "ContextFilter(), message with key=value pairs": (
            _logger("kv", lambda h: (_fmt(with_id)(h), h.addFilter(ContextFilter()))),
            KV_CALL,
        ),
        "python-json-logger JsonFormatter (baseline)": (
            _logger(
                "pjson",
                lambda h: h.setFormatter(
                    PlainJsonFormatter(["asctime", "levelname", "name", "message"])
                ),
            ),
            CALL,
        ),
        "asynclocal JsonFormatter + ContextFilter": (
            _logger(
                "ajson", lambda h: (h.setFormatter(JsonFormatter()), h.addFilter(ContextFilter()))
            ),
            CALL,
        ),
    }
    best = dict.fromkeys(configs, float("inf"))
    ctx = RequestContext("3f2a9c1e5b7d4f60a1b2c3d4e5f60718", access_token="t" * 32)
    token = correlation_id.set(ctx.request_id)
    try:
        for _ in range(ROUNDS):
            for name, (log, call) in configs.items():

                def run(log: logging.Logger = log, call: tuple[object, ...] = call) -> None:
                    for _ in range(LINES):
                        log.info(*call)

                start = time.perf_counter()
                request_storage.run(ctx, run)
                best[name] = min(best[name], (time.perf_counter() - start) / LINES * 1e6)
    finally:
        correlation_id.reset(token)
    text_base = best["stdlib text (baseline)"]
    json_base = best["python-json-logger JsonFormatter (baseline)"]
    print(f"{'configuration':48s} {'µs/line':>8s} {'vs baseline':>12s}")
    for name, value in best.items():
        base = json_base if "json" in name.lower() else text_base
        print(f"{name:48s} {value:8.2f} {value / base:11.2f}x")


if __name__ == "__main__":
    main()
