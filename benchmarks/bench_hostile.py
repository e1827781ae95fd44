"""Worst-case cost per KB of every parser of untrusted input, at 1, 16, 60 and 128 KB.

Run: .venv/bin/python benchmarks/bench_hostile.py [--sizes 1,16,128,1024] [words]
(under a minute when every parser is linear; a quadratic one shows up as a growth
factor far above 1; words pick the rows whose name contains one of them)

For each parser the input is the worst shape known for it (long backslash runs
in a quoted cookie, one header repeated thousands of times, ...), built at
each size. Printed: CPU µs per KB of input at each size (best of several runs)
and the growth factor = cost per KB at 128 KB / cost per KB at 1 KB (1 is
linear, 128 would be quadratic; below 1 where a size cap stops the work, as
for cookies past 64 KB). The stdlib's `SimpleCookie` on the same cookie
input, and a plain dict comprehension over the same distinct headers (the floor:
past a few hundred KB the memory hierarchy, not the algorithm, raises the cost
per KB of both), are measured in the same run. Only public names (plus the task-queue
integration's shared decoder) are used, so the script also runs against older
versions of the package.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from types import SimpleNamespace
from typing import Any

from asynclocal.errors import RequestRejected
from asynclocal.integrations import _queue
from asynclocal.integrations.aws_lambda import request_context_for
from asynclocal.request import (
    RequestContext,
    RequestContextFactory,
    RequestIdPolicy,
    parse_cookie_header,
)

SIZES_KB = (1, 16, 60, 128)  # 60 KB: just under the cookie cap
BUDGET_S = 0.5  # repeat a measurement until this much time was spent (at least once)
MAX_REPEATS = 7

Case = Callable[[int], Callable[[], object]]  # size in bytes -> zero-argument job


def _cookie_backslashes(n: int) -> Callable[[], object]:
    header = 'access_token="' + "\\" * (n - 16) + '"'
    return lambda: parse_cookie_header(header)


def _cookie_escapes(n: int) -> Callable[[], object]:
    header = 'a="' + '\\"\\012' * ((n - 4) // 6) + '"'
    return lambda: parse_cookie_header(header)


def _cookie_many(n: int) -> Callable[[], object]:
    header = "; ".join(f"c{i}=v{i}" for i in range(n // 10))
    return lambda: parse_cookie_header(header)


def _stdlib_backslashes(n: int) -> Callable[[], object]:
    header = 'access_token="' + "\\" * (n - 16) + '"'
    return lambda: SimpleCookie().load(header)


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/", "headers": headers, "client": None}


_FACTORY = RequestContextFactory()


def _asgi_repeated_id(n: int) -> Callable[[], object]:
    value = b"0123456789abcdef0123456789abcdef"
    scope = _scope([(b"x-request-id", value)] * (n // (len(value) + 12)))
    return lambda: dict(_FACTORY.from_asgi(scope).headers)


def _asgi_repeated_cookie(n: int) -> Callable[[], object]:
    scope = _scope([(b"cookie", b"session=abcdef0123456789")] * (n // 30))

    def job() -> object:
        return _FACTORY.from_asgi(scope).cookies

    return job


def _asgi_distinct(n: int) -> Callable[[], object]:
    scope = _scope([(f"x-h{i}".encode(), b"v" * 20) for i in range(n // 28)])
    return lambda: dict(_FACTORY.from_asgi(scope).headers)


def _stdlib_distinct(n: int) -> Callable[[], object]:
    # The floor for a header view: one dict comprehension over the same headers.
    raw = [(f"x-h{i}".encode(), b"v" * 20) for i in range(n // 28)]
    return lambda: {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}


def _wsgi_environ(n: int) -> Callable[[], object]:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.version": (1, 0)}
    for i in range(n // 32):
        environ[f"HTTP_X_H{i}"] = "v" * 20
    environ["HTTP_COOKIE"] = 'a="' + "\\" * (n // 2) + '"'

    def job() -> object:
        ctx = _FACTORY.from_environ(environ)
        return dict(ctx.headers), ctx.cookies

    return job


def _request_id(n: int) -> Callable[[], object]:
    policy = RequestIdPolicy()
    custom = RequestIdPolicy(validator=lambda value: True)
    values = ["a" * n, "a" * 127 + "\x00" * (n - 127), "a" * (n - 1) + "\n"]

    def job() -> object:
        return [(policy.resolve(v, None), custom.resolve(v, None)) for v in values]

    return job


_LAMBDA_CONTEXT = SimpleNamespace(aws_request_id="bench-invocation")


def _lambda_event(n: int) -> Callable[[], object]:
    count = n // 64
    event = {
        "httpMethod": "GET",
        "path": "/",
        "headers": {f"x-h{i}": "v" * 20 for i in range(count)},
        "multiValueHeaders": {"x-request-id": ["0123456789abcdef"] * count},
        "cookies": [f"c{i}=v" for i in range(count)],
        "requestContext": {"identity": {"sourceIp": "127.0.0.1"}},
    }
    return lambda: request_context_for(event, _LAMBDA_CONTEXT).cookies


def _task_carrier(n: int) -> Callable[[], object]:
    count = n // 40
    raw = json.dumps(
        {
            "v": 1,
            "carrier": {f"x-h{i}": "v" * 20 for i in range(count)},
            "stores": {},
            "fields": {"f": ["x"] * count},
        }
    )
    junk = "[" * (n // 2) + "]" * (n // 2)
    return lambda: (_queue.decode(raw), _queue.decode(junk))


def _response_headers(n: int) -> Callable[[], object]:
    value = "v" * (n - 10)
    bad = "v" * (n - 11) + "\x00"
    pairs = [("Retry-After", "1")] * (n // 16)

    def job() -> object:
        ctx = RequestContext("bench")
        ctx.add_response_header("X-Long", value)
        try:
            ctx.add_response_header("X-Bad", bad)
        except ValueError:
            pass
        exc = RequestRejected("bench", headers=pairs)
        return ctx.response_headers(), exc.headers

    return job


CASES: dict[str, Case] = {
    "cookie: quoted backslash run": _cookie_backslashes,
    'cookie: quoted \\" and octal escapes': _cookie_escapes,
    "cookie: many small pairs": _cookie_many,
    "stdlib SimpleCookie: backslash run": _stdlib_backslashes,
    "ASGI: repeated X-Request-ID": _asgi_repeated_id,
    "ASGI: repeated Cookie, then ctx.cookies": _asgi_repeated_cookie,
    "ASGI: many distinct headers": _asgi_distinct,
    "plain dict comprehension: same distinct headers": _stdlib_distinct,
    "WSGI environ: many headers + quoted cookie": _wsgi_environ,
    "request id policy: hostile ids": _request_id,
    "Lambda event: headers, multiValueHeaders, cookies": _lambda_event,
    "task carrier: decode (valid, deep junk)": _task_carrier,
    "response headers: add/validate, rejection": _response_headers,
}


def _best(job: Callable[[], object]) -> float:
    best = float("inf")
    spent = 0.0
    for _ in range(MAX_REPEATS):
        start = time.thread_time()  # CPU time: other processes on the machine do not count
        job()
        took = time.thread_time() - start
        best = min(best, took)
        spent += took
        if spent > BUDGET_S:
            break
    return best


def main() -> None:
    args = sys.argv[1:]
    sizes = SIZES_KB
    if "--sizes" in args:
        at = args.index("--sizes")
        sizes = tuple(int(kb) for kb in args[at + 1].split(","))
        del args[at : at + 2]
    only = args
    logging.getLogger("asynclocal").setLevel(logging.CRITICAL)  # junk carriers warn
    print(f"Python {sys.version.split()[0]}; µs per KB of input (best of up to {MAX_REPEATS})")
    header = " | ".join(f"{kb} KB" for kb in sizes)
    print(f"| parser | {header} | growth {sizes[-1]}/{sizes[0]} |")
    print("|---|" + "---|" * len(sizes) + "---|")
    for name, case in CASES.items():
        if only and not any(word in name for word in only):
            continue
        per_kb: list[float] = []
        for kb in sizes:
            job = case(kb * 1024)
            per_kb.append(_best(job) * 1e6 / kb)
        cells = " | ".join(f"{v:,.1f}" for v in per_kb)
        print(f"| {name} | {cells} | {per_kb[-1] / per_kb[0]:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
