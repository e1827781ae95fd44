"""The request factory's constructor builds what `RequestContext.__init__` builds.

`new_request_context` skips `__init__`'s argument handling on every request;
these tests fail when a slot is left unset, or when a context built from an
ASGI scope or a WSGI environ differs from one built the public way.
"""

from __future__ import annotations

import time
from typing import Any

from asynclocal.request import RequestContext, RequestContextFactory
from asynclocal.request._context import new_request_context
from asynclocal.request._factory import AsgiRequestContext

_CLOCKS = {"started_at", "started_monotonic"}


def _slots(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        names.update(getattr(klass, "__slots__", ()))
    return names - {"__weakref__"}


def _state(ctx: RequestContext, names: set[str]) -> dict[str, Any]:
    # Every slot must be set: a missing one raises AttributeError here.
    return {name: getattr(ctx, name) for name in sorted(names)}


def test_fast_constructor_sets_every_slot_as_init_does() -> None:
    names = _slots(RequestContext) - _CLOCKS
    before = time.time()
    slow = RequestContext(
        "abc-1", method="POST", path="/p", client="10.0.0.1:5", headers={"a": "b"}
    )
    fast = new_request_context(
        RequestContext, "abc-1", "POST", "/p", "10.0.0.1:5", {"a": "b"}, "abc-1", None
    )
    after = time.time()
    assert _state(fast, names) == _state(slow, names)
    assert before <= fast.started_at <= after
    assert fast.started_monotonic >= slow.started_monotonic
    # Fresh containers per context, never shared between requests.
    other = new_request_context(RequestContext, "abc-2", "GET", "/", None, {}, "abc-2", None)
    assert other._fields is not fast._fields
    assert other._response_headers is not fast._response_headers
    assert other._response_callbacks is not fast._response_callbacks


def test_asgi_context_matches_the_public_constructor_and_reads_route_lazily() -> None:
    factory = RequestContextFactory(continue_trace=False)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "PUT",
        "path": "/items/7",
        "client": ("127.0.0.1", 4000),
        "headers": [(b"x-request-id", b"req-42"), (b"X-Custom", b"v")],
    }
    ctx = factory.from_asgi(scope)
    assert type(ctx) is AsgiRequestContext
    expected = RequestContext(
        "req-42",
        method="PUT",
        path="/items/7",
        client="127.0.0.1:4000",
        headers={"x-request-id": "req-42", "x-custom": "v"},
    )
    names = _slots(RequestContext) - _CLOCKS - {"headers", "_scope"}
    assert _state(ctx, names) == _state(expected, names)
    assert dict(ctx.headers) == dict(expected.headers)
    assert ctx.route is None
    scope["path_template"] = "/items/{id}"
    assert ctx.route == "/items/{id}"
    ctx.route = "/explicit"
    assert ctx.route == "/explicit"


def test_environ_context_matches_the_public_constructor() -> None:
    factory = RequestContextFactory(continue_trace=False)
    environ = {
        "REQUEST_METHOD": "DELETE",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/x",
        "REMOTE_ADDR": "10.1.2.3",
        "REMOTE_PORT": "9",
        "HTTP_X_REQUEST_ID": "req-43",
        "CONTENT_TYPE": "text/plain",
    }
    ctx = factory.from_environ(environ)
    expected = RequestContext(
        "req-43",
        method="DELETE",
        path="/app/x",
        client="10.1.2.3:9",
        headers={"x-request-id": "req-43", "content-type": "text/plain"},
    )
    names = _slots(RequestContext) - _CLOCKS - {"headers"}
    assert _state(ctx, names) == _state(expected, names)
    assert dict(ctx.headers) == dict(expected.headers)
