"""`RequestContext`: what deep code needs to know about the request it serves."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .._header_rules import header_problem
from .._storage import AsyncLocalStorage
from ..errors import NoRequestContext
from ._cookies import parse_cookie_header
from ._rejected import RequestRejected
from ._trace_ids import new_trace_and_span_ids

__all__ = [
    "NoRequestContext",
    "RequestContext",
    "RequestRejected",
    "add_request_initializer",
    "current_request",
    "remove_request_initializer",
    "request_id",
    "request_storage",
    "run_request_initializers",
]

_MISSING: Any = object()
_C = TypeVar("_C", bound="RequestContext")
_new_object = object.__new__
_wall_clock = time.time
_perf_counter = time.perf_counter


class RequestContext:
    """The state of one request, shared (never copied) by all code serving it.

    Fields set by the middleware: `request_id`, `method`, `path`, `route` (when
    the framework knows it), `client` (the peer address, ``"host:port"`` or
    None), `started_at` (wall-clock seconds since the epoch) and `headers`
    (lower-cased names). `cookies` is parsed from the ``Cookie`` header on first
    use; a malformed header yields the cookies that could be parsed.

    Filled by the app (usually in the middleware's `on_request` hook): `user`,
    `access_token` and `refresh_token`. The tokens are secrets: `repr()` hides
    them, the logging integration never prints them, and propagation never
    sends them unless explicitly allow-listed.

    Trace fields: `trace_id`, `span_id` (W3C hex), the caller's `parent_span_id`,
    `trace_flags` and `tracestate` (filled by `asynclocal.propagation` when a
    trace is continued), and the causation chain `root_request_id` /
    `parent_request_id`.

    App-defined fields go through `get(key, default)` / `set(key, value)`.
    """

    __slots__ = (
        "__weakref__",
        "_cookies",
        "_fields",
        "_has_extras",
        "_response_callbacks",
        "_response_headers",
        "_span_id",
        "_trace_id",
        "_trace_lazy",
        "access_token",
        "client",
        "headers",
        "method",
        "parent_request_id",
        "parent_span_id",
        "path",
        "refresh_token",
        "request_id",
        "root_request_id",
        "route",
        "started_at",
        "started_monotonic",
        "trace_flags",
        "tracestate",
        "user",
    )

    request_id: str
    method: str
    path: str
    route: str | None
    client: str | None
    headers: Mapping[str, str]
    user: Any
    access_token: str | None
    refresh_token: str | None
    _trace_id: str | None
    _span_id: str | None
    _trace_lazy: bool
    parent_span_id: str | None
    trace_flags: int | None
    tracestate: str | None
    root_request_id: str
    parent_request_id: str | None
    started_at: float
    started_monotonic: float
    _cookies: dict[str, str] | None
    _fields: dict[str, Any]
    _response_headers: list[tuple[str, str]]
    _response_callbacks: list[Callable[[], Iterable[tuple[str, str]]]]
    _has_extras: bool

    if not TYPE_CHECKING:  # mypy keeps checking attribute names

        def __getattr__(self, name: str) -> Any:
            # The request factory sets only what every request needs; the slots
            # most requests never touch get `__init__`'s value on first read.
            make = _LAZY_DEFAULTS.get(name)
            if make is None:
                raise AttributeError(
                    f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self
                )
            value = make()
            object.__setattr__(self, name, value)
            return value

    def __init__(
        self,
        request_id: str,
        *,
        method: str = "",
        path: str = "",
        route: str | None = None,
        client: str | None = None,
        headers: Mapping[str, str] | None = None,
        user: Any = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        root_request_id: str | None = None,
        parent_request_id: str | None = None,
        started_at: float | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(request_id, str) or not request_id:
            raise TypeError(
                f"RequestContext(request_id) must be a non-empty str, got {request_id!r:.40}"
            )
        _fill_core(self, request_id, method, path, root_request_id or request_id, parent_request_id)
        self.route = route
        self.client = client
        self.headers = {k.lower(): v for k, v in headers.items()} if headers else {}
        self.user = user
        self.access_token = access_token
        self.refresh_token = refresh_token
        self._trace_id = trace_id
        self._span_id = span_id
        self.parent_span_id = None
        self.trace_flags = None
        self.tracestate = None
        self._cookies = None
        self._fields = dict(fields) if fields else {}
        self._response_headers = []
        self._response_callbacks = []
        if started_at is not None:
            self.started_at = started_at

    # -- response headers ---------------------------------------------------

    def add_response_header(self, name: str, value: str) -> None:
        """Ask the middleware to add `name: value` to this request's response.

        Checked here, at the call, by the rule every asynclocal header follows: the
        name is an RFC 9110 token (no spaces, colons or control characters), the
        value Latin-1 text without CR, LF or control characters. So a bad header
        fails in the code that added it, never as a broken response.

        Raises:
            TypeError: `name` or `value` is not a str.
            ValueError: the name or value breaks the header rule (the message never
                repeats the value).
        """
        _check_header(name, value)
        self._response_headers.append((name, value))
        self._has_extras = True

    def on_response(self, callback: Callable[[], Iterable[tuple[str, str]]]) -> None:
        """Register `callback`, called when the response starts, returning headers to add.

        Used for values known only at the end of the handler (``Server-Timing``).
        """
        if not callable(callback):
            raise TypeError(
                f"RequestContext.on_response() expected a callable, got {type(callback).__name__}"
            )
        self._response_callbacks.append(callback)
        self._has_extras = True

    def response_headers(self) -> list[tuple[str, str]]:
        """The headers the middleware must add now: added ones, then callbacks' (validated).

        A callback that raises or returns an invalid header is skipped, never
        breaking the response.
        """
        if not self._has_extras:
            return []
        headers = list(self._response_headers)
        for callback in self._response_callbacks:
            try:
                for name, value in callback():
                    _check_header(name, value)
                    headers.append((name, value))
            except Exception:  # a broken callback must not break the response
                continue
        return headers

    # -- trace -------------------------------------------------------------

    @property
    def trace_id(self) -> str | None:
        """The W3C trace id (32 hex digits), or None when no trace was started."""
        if self._trace_id is None and self._trace_lazy:
            self.ensure_trace()
        return self._trace_id

    @trace_id.setter
    def trace_id(self, value: str | None) -> None:
        self._trace_id = value

    @property
    def span_id(self) -> str | None:
        """This request's W3C span id (16 hex digits), or None when no trace was started."""
        if self._span_id is None and self._trace_lazy:
            self.ensure_trace()
        return self._span_id

    @span_id.setter
    def span_id(self, value: str | None) -> None:
        self._span_id = value

    def start_trace_lazily(self) -> None:
        """Give this request a fresh trace the first time its trace or span id is read.

        Most requests never need one, so the random ids are made on demand;
        every reader sees the same ids once made.
        """
        self._trace_lazy = True

    def ensure_trace(self) -> tuple[str, str]:
        """Make this request's trace and span ids now where missing; return both."""
        self._trace_lazy = False
        trace_id, span_id = self._trace_id, self._span_id
        if trace_id is None or span_id is None:
            fresh_trace, fresh_span = new_trace_and_span_ids()
            if trace_id is None:
                trace_id = self._trace_id = fresh_trace
            if span_id is None:
                span_id = self._span_id = fresh_span
        return trace_id, span_id

    # -- cookies ----------------------------------------------------------

    @property
    def cookies(self) -> Mapping[str, str]:
        """Cookies from the ``Cookie`` header, parsed on first use, tolerant of junk."""
        if self._cookies is None:
            self._cookies = parse_cookie_header(self.headers.get("cookie", ""))
        return self._cookies

    # -- app fields ---------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The app field `key`, or `default` when it was never set."""
        return self._fields.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Set the app field `key` for the rest of the request.

        Raises:
            TypeError: `key` is not a string.
        """
        if not isinstance(key, str):
            raise TypeError(f"RequestContext.set() key must be a str, got {type(key).__name__}")
        self._fields[key] = value

    def set_if_absent(self, key: str, value: Any) -> Any:
        """Set `key` only when it has no value yet; return the value now stored."""
        if not isinstance(key, str):
            raise TypeError(
                f"RequestContext.set_if_absent() key must be a str, got {type(key).__name__}"
            )
        return self._fields.setdefault(key, value)

    def delete(self, key: str) -> None:
        """Remove the app field `key` if present."""
        self._fields.pop(key, None)

    @property
    def fields(self) -> Mapping[str, Any]:
        """A read-only view of the app fields."""
        from types import MappingProxyType

        return MappingProxyType(self._fields)

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    # -- misc ---------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds since the request started (monotonic clock)."""
        return time.perf_counter() - self.started_monotonic

    @property
    def user_id(self) -> str | None:
        """A printable id for `user`: its `id` attribute or key, else `str(user)`.

        None when there is no user."""
        user = self.user
        if user is None:
            return None
        if isinstance(user, Mapping):
            uid = user.get("id", user.get("sub", _MISSING))
        else:
            uid = getattr(user, "id", _MISSING)
        return str(user if uid is _MISSING else uid)

    def __repr__(self) -> str:
        token = "<hidden>" if self.access_token else None
        return (
            f"RequestContext(request_id={self.request_id!r}, method={self.method!r}, "
            f"path={self.path!r}, user_id={self.user_id!r}, access_token={token})"
        )


_set_route = RequestContext.__dict__["route"].__set__


def _fill_core(
    self: RequestContext,
    request_id: str,
    method: str,
    path: str,
    root_request_id: str,
    parent_request_id: str | None,
) -> None:
    # What every context gets set at once; `__init__` sets the rest itself, the
    # request factory leaves it to `_LAZY_DEFAULTS` (filled on first read).
    self.request_id = request_id
    self.method = method
    self.path = path
    self.root_request_id = root_request_id
    self.parent_request_id = parent_request_id
    self._trace_lazy = False
    self._has_extras = False
    self.started_at = _wall_clock()
    self.started_monotonic = _perf_counter()


def _none() -> None:
    return None


#: `__init__`'s defaults for the slots the request factory leaves unset.
_LAZY_DEFAULTS: dict[str, Callable[[], Any]] = {
    "client": _none,
    "headers": dict,
    "user": _none,
    "access_token": _none,
    "refresh_token": _none,
    "_trace_id": _none,
    "_span_id": _none,
    "parent_span_id": _none,
    "trace_flags": _none,
    "tracestate": _none,
    "_cookies": _none,
    "_fields": dict,
    "_response_headers": list,
    "_response_callbacks": list,
}

#: Passed for `client`/`headers` to `new_request_context`: leave the slot to a
#: subclass's lazy reader (the ASGI context reads them from the scope).
LAZY: Any = object()


#: The names of the `RequestContext` constructor's arguments (``request_id`` included),
#: for helpers that build one from keyword arguments.
REQUEST_CONTEXT_ARGS: frozenset[str] = frozenset(
    name for name in inspect.signature(RequestContext.__init__).parameters if name != "self"
)


def _check_header(name: str, value: str) -> None:
    for what, text in (("name", name), ("value", value)):
        if not isinstance(text, str):
            raise TypeError(f"response header {what} must be a str, got {type(text).__name__}")
    problem = header_problem(name, value)
    if problem is not None:
        raise ValueError(f"response header: {problem}")


def new_request_context(
    cls: type[_C],
    request_id: str,
    method: str,
    path: str,
    client: str | None,
    headers: Mapping[str, str],
    root_request_id: str,
    parent_request_id: str | None,
) -> _C:
    """What the request factory builds on every request: a `cls` with these fields set.

    `request_id` comes from `RequestIdPolicy.decide` and `headers` already have
    lower-case names, so `__init__`'s argument checks are skipped; every other
    field gets `__init__`'s default.
    """
    self = _new_object(cls)
    _set_route(self, None)  # the slot: AsgiRequestContext wraps it in a property
    _fill_core(self, request_id, method, path, root_request_id, parent_request_id)
    if client is not LAZY:
        self.client = client
    if headers is not LAZY:
        self.headers = headers
    return self


def encoded_response_headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    """``ctx.response_headers()`` as ASGI ``(name, value)`` bytes, lower-case names; [] if none."""
    if not ctx._has_extras:
        return []
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in ctx.response_headers()
    ]


#: The storage that holds the current request's `RequestContext`.
request_storage: AsyncLocalStorage[RequestContext] = AsyncLocalStorage(name="asynclocal.request")


def current_request() -> RequestContext:
    """The `RequestContext` of the request being served.

    Raises:
        NoRequestContext: no request is active here; the message names the middleware to install.
    """
    ctx = request_storage.get_store()
    if ctx is None:
        raise NoRequestContext()
    return ctx


def request_id() -> str | None:
    """The current request's id, or None outside a request."""
    ctx = request_storage.get_store()
    return None if ctx is None else ctx.request_id


_initializers: tuple[Callable[[RequestContext], None], ...] = ()


def add_request_initializer(fn: Callable[[RequestContext], None]) -> None:
    """Run `fn(ctx)` for every new `RequestContext`, before the app's `on_request` hook.

    Every middleware and `with_request_context` call the initializers once the
    context is built from the incoming request (propagation uses this to
    continue the caller's trace). Idempotent per function.
    """
    global _initializers
    if not callable(fn):
        raise TypeError(f"add_request_initializer() expected a callable, got {type(fn).__name__}")
    if fn not in _initializers:
        _initializers = (*_initializers, fn)


def remove_request_initializer(fn: Callable[[RequestContext], None]) -> None:
    """Stop running `fn` for new requests. Idempotent."""
    global _initializers
    _initializers = tuple(f for f in _initializers if f is not fn)


def run_request_initializers(ctx: RequestContext) -> None:
    """Run the registered initializers on `ctx` (middleware call this)."""
    for fn in _initializers:
        fn(ctx)
