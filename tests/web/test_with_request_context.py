"""`with_request_context(request, handler)` for code with no middleware."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage, current_request, request_id, with_request_context
from asynclocal.request import (
    InvalidRequestId,
    NoRequestContext,
    RequestContext,
    RequestContextFactory,
    add_request_initializer,
    remove_request_initializer,
)
from tests.web.conftest import HEX32

ASGI_SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/orders/9",
    "client": ("10.0.0.5", 5555),
    "headers": [
        (b"x-request-id", b"asgi-1"),
        (b"cookie", b"access_token=tok; theme=dark"),
        (b"x-multi", b"a"),
        (b"x-multi", b"b"),
    ],
}
ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "PUT",
    "SCRIPT_NAME": "/api",
    "PATH_INFO": "/caf\xc3\xa9",
    "REMOTE_ADDR": "10.0.0.6",
    "REMOTE_PORT": "4444",
    "HTTP_X_REQUEST_ID": "wsgi-1",
    "HTTP_COOKIE": "access_token=tok2",
    "CONTENT_TYPE": "application/json",
    "wsgi.version": (1, 0),
}


def snapshot() -> dict[str, Any]:
    ctx = current_request()
    return {
        "id": ctx.request_id,
        "method": ctx.method,
        "path": ctx.path,
        "client": ctx.client,
        "cookies": dict(ctx.cookies),
        "headers": dict(ctx.headers),
    }


def test_asgi_scope() -> None:
    got = with_request_context(ASGI_SCOPE, snapshot)
    assert got["id"] == "asgi-1"
    assert (got["method"], got["path"], got["client"]) == ("POST", "/orders/9", "10.0.0.5:5555")
    assert got["cookies"] == {"access_token": "tok", "theme": "dark"}
    assert got["headers"]["x-multi"] == "a, b"
    assert request_id() is None  # restored afterwards


def test_wsgi_environ() -> None:
    got = with_request_context(ENVIRON, snapshot)
    assert got["id"] == "wsgi-1"
    assert (got["method"], got["path"], got["client"]) == ("PUT", "/api/café", "10.0.0.6:4444")
    assert got["headers"]["content-type"] == "application/json"
    assert got["headers"]["x-request-id"] == "wsgi-1"


def test_plain_mapping_of_headers() -> None:
    got = with_request_context({"X-Request-ID": "map-1", "Cookie": "a=1"}, snapshot)
    assert got["id"] == "map-1"
    assert got["headers"] == {"x-request-id": "map-1", "cookie": "a=1"}
    fresh = with_request_context({"X-Request-ID": "bad\r\nid"}, lambda: request_id())
    assert fresh != "bad\r\nid"
    assert HEX32.fullmatch(fresh)
    assert HEX32.fullmatch(with_request_context({}, lambda: request_id()))


def test_framework_request_objects_holding_a_scope_or_environ() -> None:
    class StarletteLike:
        scope = ASGI_SCOPE

    class DjangoLike:
        META = ENVIRON

    assert with_request_context(StarletteLike(), request_id) == "asgi-1"
    assert with_request_context(DjangoLike(), request_id) == "wsgi-1"


async def test_async_handler_and_async_hook_see_the_context() -> None:
    seen: list[str] = []

    async def on_request(ctx: RequestContext) -> None:
        await asyncio.sleep(0)
        ctx.access_token = ctx.cookies["access_token"]
        ctx.user = {"id": "u1"}
        seen.append(current_request().request_id)

    async def handler() -> tuple[str | None, str | None, str | None]:
        await asyncio.sleep(0)
        task_saw = await asyncio.create_task(asyncio.sleep(0, result=request_id()))
        return task_saw, current_request().access_token, current_request().user_id

    result = await with_request_context(ASGI_SCOPE, handler, on_request=on_request)
    assert result == ("asgi-1", "tok", "u1")
    assert seen == ["asgi-1"]
    with pytest.raises(NoRequestContext):
        current_request()


async def test_concurrent_async_handlers_stay_apart() -> None:
    async def handler(n: int) -> tuple[int, str | None]:
        await asyncio.sleep(0.001 * (n % 5))
        return n, request_id()

    async def one(n: int) -> tuple[int, str | None]:
        return await with_request_context({"x-request-id": f"c-{n}"}, lambda: handler(n))

    results = await asyncio.gather(*(one(n) for n in range(100)))
    assert all(rid == f"c-{n}" for n, rid in results)


def test_initializers_run_before_the_hook() -> None:
    order: list[str] = []

    def initializer(ctx: RequestContext) -> None:
        order.append(f"init:{ctx.request_id}")
        ctx.set("tenant", "t1")

    def hook(ctx: RequestContext) -> None:
        order.append(f"hook:{ctx.get('tenant')}")

    add_request_initializer(initializer)
    try:
        with_request_context(
            {"x-request-id": "i-1"}, lambda: order.append("handler"), on_request=hook
        )
    finally:
        remove_request_initializer(initializer)
    assert order == ["init:i-1", "hook:t1", "handler"]


def test_errors() -> None:
    with pytest.raises(TypeError, match="handler"):
        with_request_context({}, "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ASGI scope, a WSGI environ or a mapping"):
        with_request_context(42, lambda: None)
    with pytest.raises(TypeError, match="str names to str values"):
        with_request_context({"x-request-id": b"bytes"}, lambda: None)  # type: ignore[dict-item]
    with pytest.raises(InvalidRequestId):
        with_request_context({"x-request-id": "a b"}, lambda: None, reject_invalid=True)

    async def async_hook(ctx: RequestContext) -> None:
        return None

    with pytest.raises(TypeError, match="plain function"):
        with_request_context({}, lambda: None, on_request=async_hook)
    with pytest.raises(TypeError, match="not both"):
        with_request_context({}, lambda: None, factory=RequestContextFactory(), header="X-A")


def test_handler_exception_propagates_and_context_is_restored() -> None:
    def fail() -> None:
        raise LookupError("inner")

    with pytest.raises(LookupError, match="inner"):
        with_request_context({"x-request-id": "e-1"}, fail)
    assert request_id() is None


# -- the handler runs in a new context: other storages stay inside it ------------------------

_other: AsyncLocalStorage[str] = AsyncLocalStorage(name="tests.web.other")


def test_enter_with_of_another_storage_stays_in_the_sync_handler() -> None:
    seen: list[str | None] = []

    def handler() -> None:
        seen.append(_other.get_store())
        _other.enter_with(f"set-by-{request_id()}")

    with_request_context({"x-request-id": "one"}, handler)
    assert _other.get_store() is None  # not the caller's
    with_request_context({"x-request-id": "two"}, handler)
    assert seen == [None, None]  # nor the next request's
    assert _other.get_store() is None


async def test_enter_with_of_another_storage_stays_in_the_async_handler() -> None:
    seen: list[str | None] = []

    async def handler() -> None:
        seen.append(_other.get_store())
        _other.enter_with(f"set-by-{request_id()}")
        await asyncio.sleep(0)
        assert _other.get_store() == f"set-by-{request_id()}"

    await with_request_context({"x-request-id": "one"}, handler)
    assert _other.get_store() is None
    await with_request_context({"x-request-id": "two"}, handler)
    assert seen == [None, None]
    assert _other.get_store() is None
    with pytest.raises(NoRequestContext):
        current_request()


async def test_concurrent_handlers_each_see_only_their_own_other_store() -> None:
    async def handler(n: int) -> tuple[int, str | None, str | None]:
        before = _other.get_store()
        _other.enter_with(f"store-{n}")
        await asyncio.sleep(0.001 * (n % 7))
        return n, before, _other.get_store()

    async def one(n: int) -> tuple[int, str | None, str | None]:
        return await with_request_context({"x-request-id": f"c-{n}"}, lambda: handler(n))

    results = await asyncio.gather(*(one(n) for n in range(60)))
    assert all(before is None and after == f"store-{n}" for n, before, after in results)
    assert _other.get_store() is None
