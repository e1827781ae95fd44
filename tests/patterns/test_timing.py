"""@timed: nested spans per request, concurrent children kept apart, Server-Timing via uvicorn."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asynclocal.errors import ConfigurationError
from asynclocal.patterns import timing
from asynclocal.patterns.timing import (
    Span,
    server_timing_header,
    time_block,
    timed,
    timeline,
)
from asynclocal.request import RequestContext, request_storage
from asynclocal.threads import ThreadPoolExecutor
from asynclocal.web.asgi import RequestContextMiddleware
from tests.support.servers import run_uvicorn

from .conftest import ListHandler


@timed("repository")
async def repository(delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    return 1


@timed("service")
async def service(n: int) -> int:
    total = 0
    for _ in range(n):
        total += await repository(random.uniform(0, 0.003))
    return total


@timed("controller")
async def controller(n: int) -> int:
    return await service(n)


def paths(spans: list[Span]) -> list[tuple[str, ...]]:
    return [s.path for s in spans]


async def test_nested_spans_form_a_stack() -> None:
    async def handler() -> list[Span]:
        assert await controller(2) == 2
        tl = timeline()
        assert tl is not None
        return tl.spans

    spans = await request_storage.run(RequestContext("r1"), handler)
    assert paths(spans) == [
        ("controller",),
        ("controller", "service"),
        ("controller", "service", "repository"),
        ("controller", "service", "repository"),
    ]
    assert [s.depth for s in spans] == [0, 1, 2, 2]
    outer, inner = spans[0], spans[1]
    assert outer.start <= inner.start
    assert inner.start + inner.duration <= outer.start + outer.duration


def test_sync_functions_and_default_names() -> None:
    @timed
    def leaf() -> str:
        return "x"

    @timed(name="outer")
    def outer() -> str:
        with time_block("block"):
            return leaf()

    def handler() -> list[tuple[str, ...]]:
        assert outer() == "x"
        tl = timeline()
        assert tl is not None
        return paths(tl.spans)

    got = request_storage.run(RequestContext("r"), handler)
    leaf_name = leaf.__qualname__
    assert got == [("outer",), ("outer", "block"), ("outer", "block", leaf_name)]


async def test_concurrent_children_keep_their_own_branch() -> None:
    @timed("child")
    async def child(i: int) -> int:
        await asyncio.sleep(random.uniform(0, 0.01))
        await repository(random.uniform(0, 0.005))
        return i

    @timed("after")
    async def after() -> None:
        return None

    @timed("parent")
    async def parent() -> None:
        assert await asyncio.gather(*(child(i) for i in range(8))) == list(range(8))
        await after()  # the parent's stack was not touched by its children

    async def handler() -> list[Span]:
        await parent()
        tl = timeline()
        assert tl is not None
        return tl.spans

    spans = await request_storage.run(RequestContext("r"), handler)
    assert sorted(paths(spans)) == sorted(
        [("parent",), ("parent", "after")]
        + [("parent", "child")] * 8
        + [("parent", "child", "repository")] * 8
    )


def test_threads_record_under_the_caller() -> None:
    @timed("work")
    def work() -> int:
        return 1

    @timed("fan_out")
    def fan_out() -> int:
        with ThreadPoolExecutor(3) as pool:
            return sum(pool.map(lambda _: work(), range(6)))

    def handler() -> list[tuple[str, ...]]:
        assert fan_out() == 6
        tl = timeline()
        assert tl is not None
        return paths(tl.spans)

    got = request_storage.run(RequestContext("r"), handler)
    assert sorted(got) == [("fan_out",)] + [("fan_out", "work")] * 6


async def test_exceptions_are_recorded_and_propagate() -> None:
    class Boom(Exception):
        pass

    @timed("fails")
    async def fails() -> None:
        await repository()
        raise Boom("x")

    async def handler() -> list[Span]:
        with pytest.raises(Boom):
            await fails()
        await repository()  # back at the top of the stack
        tl = timeline()
        assert tl is not None
        return tl.spans

    spans = await request_storage.run(RequestContext("r"), handler)
    assert [(s.path, s.error) for s in spans] == [
        (("fails",), "Boom"),
        (("fails", "repository"), None),
        (("repository",), None),
    ]


async def test_outside_a_request_nothing_is_recorded() -> None:
    assert await controller(1) == 1
    assert timeline() is None
    assert server_timing_header() == ""


def test_rejects_bad_names() -> None:
    with pytest.raises(TypeError, match="non-empty name"):
        timed("")
    with pytest.raises(TypeError, match="non-empty str"), time_block(""):
        pass


def test_header_and_summary_through_the_asgi_middleware(
    capture_logger: ListHandler, timing_reports: None
) -> None:
    async def rooms(request: Request) -> Response:
        n = int(request.query_params["n"])
        await asyncio.sleep(random.uniform(0, 0.01))
        return JSONResponse({"count": await controller(n)})

    app = RequestContextMiddleware(Starlette(routes=[Route("/rooms", rooms)]))
    ns = [random.randint(1, 6) for _ in range(40)]
    with run_uvicorn(app) as base:

        async def go() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                return await asyncio.gather(*(client.get("/rooms", params={"n": n}) for n in ns))

        answers = asyncio.run(go())
    summaries = {
        r.request_id: r  # type: ignore[attr-defined]
        for r in capture_logger.records
        if r.name == "asynclocal.timing"
    }
    for n, answer in zip(ns, answers):
        assert answer.json() == {"count": n}
        header = answer.headers["server-timing"]
        names = [part.split(";")[0] for part in header.split(", ")]
        assert names == ["controller", "service"] + ["repository"] * n + ["total"]
        assert re.search(r'repository;dur=[\d.]+;desc="controller>service>repository"', header)
        record = summaries[answer.headers["x-request-id"]]
        assert len(record.timings) == n + 2  # type: ignore[attr-defined]
        assert record.getMessage().startswith("GET /rooms ")
    assert len(summaries) == len(ns)


def test_spans_per_request_are_bounded() -> None:
    from asynclocal.patterns.timing import MAX_SPANS

    @timed("hot")
    def hot() -> None:
        return None

    def handler() -> tuple[int, int]:
        for _ in range(MAX_SPANS + 5):
            hot()
        tl = timeline()
        assert tl is not None
        return len(tl.spans), tl.dropped

    assert request_storage.run(RequestContext("r"), handler) == (MAX_SPANS, 5)


def _serve_rooms(ns: list[int]) -> list[httpx.Response]:
    async def rooms(request: Request) -> Response:
        return JSONResponse({"count": await controller(int(request.query_params["n"]))})

    app = RequestContextMiddleware(Starlette(routes=[Route("/rooms", rooms)]))
    with run_uvicorn(app) as base:

        async def go() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                return await asyncio.gather(*(client.get("/rooms", params={"n": n}) for n in ns))

        return asyncio.run(go())


def test_by_default_no_header_and_no_log_leave_the_process(capture_logger: ListHandler) -> None:
    assert timing.timing_settings() == timing.TimingSettings()
    answers = _serve_rooms([1, 2, 3])
    for n, answer in zip([1, 2, 3], answers):
        assert answer.json() == {"count": n}
        assert "server-timing" not in answer.headers
        assert "x-request-id" in answer.headers
    assert [r for r in capture_logger.records if r.name == "asynclocal.timing"] == []


def test_spans_are_still_recorded_when_nothing_is_sent() -> None:
    ctx = RequestContext("r-quiet")

    async def handler() -> tuple[list[str], str]:
        await controller(1)
        tl = timeline()
        assert tl is not None
        return [s.name for s in tl.spans], server_timing_header()

    names, header = asyncio.run(request_storage.run(ctx, handler))
    assert names == ["controller", "service", "repository"]
    assert header.startswith("controller;dur=")  # the app may send it itself
    assert ctx.response_headers() == []  # nothing added on its own


def test_a_predicate_sends_the_header_to_chosen_requests_only(
    capture_logger: ListHandler,
) -> None:
    previous = timing.configure(server_timing=lambda ctx: ctx.headers.get("x-debug") == "1")
    try:

        async def rooms(request: Request) -> Response:
            return JSONResponse({"count": await controller(1)})

        app = RequestContextMiddleware(Starlette(routes=[Route("/rooms", rooms)]))
        with run_uvicorn(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            shown = client.get("/rooms", headers={"X-Debug": "1"})
            hidden = client.get("/rooms")
    finally:
        timing.configure(**dataclasses.asdict(previous))
    assert shown.headers["server-timing"].startswith("controller;dur=")
    assert "server-timing" not in hidden.headers
    assert [r for r in capture_logger.records if r.name == "asynclocal.timing"] == []


def test_a_raising_predicate_sends_nothing_and_the_response_survives() -> None:
    def broken(ctx: RequestContext) -> bool:
        raise RuntimeError("predicate bug")

    previous = timing.configure(server_timing=broken)
    try:
        answers = _serve_rooms([2])
    finally:
        timing.configure(**dataclasses.asdict(previous))
    assert answers[0].status_code == 200
    assert "server-timing" not in answers[0].headers


def test_summary_only_logs_at_the_chosen_level(capture_logger: ListHandler) -> None:
    previous = timing.configure(summary_level=logging.WARNING)
    try:
        answers = _serve_rooms([1, 2])
    finally:
        timing.configure(**dataclasses.asdict(previous))
    assert all("server-timing" not in a.headers for a in answers)
    records = [r for r in capture_logger.records if r.name == "asynclocal.timing"]
    assert sorted(r.levelno for r in records) == [logging.WARNING, logging.WARNING]
    assert {r.request_id for r in records} == {a.headers["x-request-id"] for a in answers}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "kwargs",
    [{"server_timing": "yes"}, {"summary_level": "INFO"}, {"summary_level": True}],
)
def test_configure_rejects_bad_values_and_keeps_the_settings(kwargs: dict[str, Any]) -> None:
    before = timing.timing_settings()
    with pytest.raises(ConfigurationError, match=r"timing\.configure"):
        timing.configure(**kwargs)
    assert timing.timing_settings() is before


def test_configure_rejects_unknown_options() -> None:
    with pytest.raises(TypeError, match="server_timings"):
        timing.configure(server_timings=True)  # type: ignore[call-arg]
