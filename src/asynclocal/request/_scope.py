"""Starting a request, independent of any framework.

`RequestContextFactory` turns what every server knows (method, path, headers,
peer address) into a `RequestContext`: it applies the `RequestIdPolicy`,
runs the registered request initializers and then the app's ``on_request``
hook. Every web integration and `with_request_context` go through it, so they
all behave the same.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

from ._context import RequestContext, request_storage, run_request_initializers
from ._ids import RequestIdPolicy

__all__ = ["OnRequest", "RequestContextFactory", "with_request_context"]

R = TypeVar("R")

#: The app's hook, ``on_request(ctx)``; may be ``async``. It runs inside the
#: request's context, after the initializers, and usually fills ``ctx.user``
#: and ``ctx.access_token``. Raising `RequestRejected` answers with its status.
OnRequest = Callable[[RequestContext], Awaitable[None] | None]

_RouteDescriptor: Any = RequestContext.__dict__["route"]

#: Where a middleware leaves the `RequestContext` in the ASGI scope or WSGI
#: environ it serves, so a second middleware on the same request (a mounted
#: sub-app with its own, a framework extension under a server-level wrapper)
#: joins the running context instead of starting another one.
SERVER_KEY = "asynclocal.request_context"


def mark_served(server_state: MutableMapping[str, Any], ctx: RequestContext) -> None:
    """Record in a scope/environ that `ctx` serves it (a weak reference: the
    context often refers to the scope, and a cycle would leave both to the GC)."""
    server_state[SERVER_KEY] = weakref.ref(ctx)


def served_by_outer(server_state: Mapping[str, Any]) -> bool:
    """True when an outer middleware marked this scope/environ and its context is current.

    Checking that it is current keeps a reused scope dict from skipping a request.
    """
    ref = server_state.get(SERVER_KEY)
    if not isinstance(ref, weakref.ref):
        return False
    ctx = ref()
    return ctx is not None and ctx is request_storage.get_store()


class AsgiRequestContext(RequestContext):
    """A `RequestContext` whose `route` is read from the ASGI scope once the router set it.

    Starlette (and so FastAPI) stores the matched route in ``scope["route"]``,
    Litestar the template in ``scope["path_template"]``, after the middleware
    ran; reading them lazily makes `route` right wherever the handler looks at
    it. An explicitly assigned route wins.
    """

    __slots__ = ("_scope",)

    _scope: Mapping[str, Any]

    @property
    def route(self) -> str | None:
        value: str | None = _RouteDescriptor.__get__(self)
        if value is None:
            scope = self._scope
            path = getattr(scope.get("route"), "path", None) or scope.get("path_template")
            if isinstance(path, str):
                return path
        return value

    @route.setter
    def route(self, value: str | None) -> None:
        _RouteDescriptor.__set__(self, value)


_as_bytes: dict[frozenset[str], frozenset[bytes]] = {}


class _LazyHeaders(Mapping[str, str]):
    """Lower-cased request headers, decoded from the server's form on first use.

    `source` is an ASGI header list when `environ` is False, else a WSGI environ.
    """

    __slots__ = ("_data", "_environ", "_source")

    def __init__(self, source: Any, environ: bool = False) -> None:
        self._source = source
        self._environ = environ
        self._data: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        data = self._data
        if data is None:
            decode = _environ_headers if self._environ else _asgi_headers
            data = self._data = decode(self._source)
            self._source = None
        return data

    def __getitem__(self, key: str) -> str:
        return self._load()[key.lower() if isinstance(key, str) else key]

    def contains_any(self, names: frozenset[str]) -> bool:
        """Whether any of the lower-case header `names` came in, without decoding the rest.

        Lets a request initializer skip its work when its headers are absent.
        """
        data = self._data
        if data is None and not self._environ:
            wanted = _as_bytes.get(names)
            if wanted is None:
                wanted = _as_bytes[names] = frozenset(n.encode("latin-1") for n in names)
            # ASGI header names are lower-case bytes. A plain loop: measurably
            # faster than any() over a generator here.
            for raw_name, _ in self._source:  # noqa: SIM110
                if raw_name in wanted:
                    return True
            return False
        return any(name in self._load() for name in names)

    def get(self, key: str, default: Any = None) -> Any:
        return self._load().get(key.lower() if isinstance(key, str) else key, default)

    def __contains__(self, key: object) -> bool:
        return (key.lower() if isinstance(key, str) else key) in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return f"Headers({sorted(self._load())!r})"


def _asgi_headers(raw: Any) -> dict[str, str]:
    # A repeated name is joined once at the end ("; " for cookie, else ", "):
    # joining as they come would copy the growing value each time (quadratic).
    data: dict[str, str] = {}
    repeated: dict[str, list[str]] | None = None
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key not in data:
            data[key] = text
        elif repeated is None:
            repeated = {key: [data[key], text]}
        elif key in repeated:
            repeated[key].append(text)
        else:
            repeated[key] = [data[key], text]
    if repeated is not None:
        for key, parts in repeated.items():
            data[key] = ("; " if key == "cookie" else ", ").join(parts)
    return data


def join_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``(name, value)`` str pairs as one lower-cased dict, repeated names joined.

    The join is the ASGI view's: ``"; "`` for ``cookie``, ``", "`` otherwise,
    done once per name at the end, so the cost is linear in the input.
    """
    data: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for name, value in pairs:
        key = name.lower()
        if key not in data:
            data[key] = value
        elif key in repeated:
            repeated[key].append(value)
        else:
            repeated[key] = [data[key], value]
    for key, parts in repeated.items():
        data[key] = ("; " if key == "cookie" else ", ").join(parts)
    return data


def _environ_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    data: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            data[key[5:].replace("_", "-").lower()] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            data[key.replace("_", "-").lower()] = value
    return data


def _wsgi_text(value: str) -> str:
    # PEP 3333 hands bytes over as latin-1 text; paths are UTF-8 on the wire.
    try:
        return value.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value


class RequestContextFactory:
    """Builds each request's `RequestContext` and runs the start-of-request hooks.

    Args:
        policy: the `RequestIdPolicy`; built from `policy_options` when omitted.
        on_request: the app's hook ``on_request(ctx)`` (sync or ``async``), run after
            the registered initializers, inside the request's context.
        **policy_options: `RequestIdPolicy` arguments (`header`, `generator`,
            `validator`, `trusted_proxies`, `reject_invalid`).

    Raises:
        TypeError: both `policy` and `policy_options` were given, or `on_request`
            is not callable.
    """

    __slots__ = ("_header_bytes", "_http_key", "_resolve", "on_request", "policy")

    def __init__(
        self,
        *,
        policy: RequestIdPolicy | None = None,
        on_request: OnRequest | None = None,
        **policy_options: Any,
    ) -> None:
        if policy is not None and policy_options:
            raise TypeError(
                "pass either policy=RequestIdPolicy(...) or its options "
                f"({', '.join(sorted(policy_options))}), not both"
            )
        if policy is not None and not isinstance(policy, RequestIdPolicy):
            raise TypeError(f"policy must be a RequestIdPolicy, got {type(policy).__name__}")
        if on_request is not None and not callable(on_request):
            raise TypeError(
                "on_request must be a callable(ctx), sync or async, got "
                f"{type(on_request).__name__}"
            )
        self.policy = policy if policy is not None else RequestIdPolicy(**policy_options)
        self.on_request = on_request
        self._resolve = self.policy.resolve
        self._header_bytes = self.policy.header_bytes
        self._http_key = "HTTP_" + self.policy.header.upper().replace("-", "_")

    @property
    def header(self) -> str:
        """The request/response header carrying the id."""
        return self.policy.header

    # -- building -----------------------------------------------------------

    def from_asgi(self, scope: Mapping[str, Any]) -> AsgiRequestContext:
        """The context for an ASGI ``http`` or ``websocket`` scope.

        Raises:
            InvalidRequestId: the incoming id is invalid and the policy rejects it.
        """
        wanted = self._header_bytes
        incoming: str | None = None
        repeated: list[str] | None = None
        raw = scope.get("headers") or ()
        for name, value in raw:
            if name == wanted:
                # A repeated id header is joined as WSGI servers and Django do,
                # which no validator accepts: every server treats it as invalid.
                # Joined once, after the loop: linear in the number of repeats.
                text = value.decode("latin-1")
                if incoming is None:
                    incoming = text
                elif repeated is None:
                    repeated = [incoming, text]
                else:
                    repeated.append(text)
        if repeated is not None:
            incoming = ", ".join(repeated)
        client = scope.get("client")
        host = client[0] if client else None
        ctx = AsgiRequestContext._for_request(
            self._resolve(incoming, host),
            scope.get("method", "GET"),
            scope.get("path", ""),
            f"{host}:{client[1]}" if client else None,
            _LazyHeaders(raw),
        )
        ctx._scope = scope
        return ctx

    def from_environ(self, environ: Mapping[str, Any]) -> RequestContext:
        """The context for a WSGI environ (also Django's ``request.META``).

        Raises:
            InvalidRequestId: the incoming id is invalid and the policy rejects it.
        """
        host = environ.get("REMOTE_ADDR") or None
        port = environ.get("REMOTE_PORT")
        return RequestContext._for_request(
            self._resolve(environ.get(self._http_key), host),
            environ.get("REQUEST_METHOD", "GET"),
            _wsgi_text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")),
            (f"{host}:{port}" if port else host) if host else None,
            _LazyHeaders(environ, True),
        )

    def from_headers(
        self,
        headers: Mapping[str, str],
        *,
        method: str = "",
        path: str = "",
        client: str | None = None,
    ) -> RequestContext:
        """The context for a plain mapping of headers (names in any case).

        Raises:
            TypeError: a header name or value is not a str.
            InvalidRequestId: the incoming id is invalid and the policy rejects it.
        """
        lowered: dict[str, str] = {}
        for name, value in headers.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(
                    "with_request_context() header mappings must map str names to str values"
                )
            lowered[name.lower()] = value
        host = client.rsplit(":", 1)[0] if client and client.count(":") == 1 else client
        ctx = RequestContext(
            self._resolve(lowered.get(self.policy.header_lower), host),
            method=method,
            path=path,
            client=client,
        )
        ctx.headers = lowered
        return ctx

    def from_request(self, request: object) -> RequestContext:
        """The context for an ASGI scope, a WSGI environ, or a mapping of headers.

        Framework request objects holding one of those (Starlette's ``.scope``,
        Werkzeug's ``.environ``, Django's ``.META``) are accepted too, and so
        are a ready `RequestContext` (used as is) and anything with a
        ``to_request_context()`` method, such as the `PropagatedContext` that
        `asynclocal.propagation.extract(carrier)` returns.

        Raises:
            TypeError: `request` is none of these.
            InvalidRequestId: the incoming id is invalid and the policy rejects it.
        """
        if isinstance(request, RequestContext):
            return request
        to_context = getattr(request, "to_request_context", None)
        if callable(to_context):
            # e.g. asynclocal.propagation.PropagatedContext, from extract(carrier)
            ctx = to_context()
            if not isinstance(ctx, RequestContext):
                raise TypeError(
                    f"{type(request).__name__}.to_request_context() must return a "
                    f"RequestContext, got {type(ctx).__name__}"
                )
            return ctx
        if not isinstance(request, Mapping):
            for attr in ("scope", "environ", "META"):
                inner = getattr(request, attr, None)
                if isinstance(inner, Mapping):
                    request = inner
                    break
            else:
                raise TypeError(
                    "expected an ASGI scope, a WSGI environ or a mapping of headers, got "
                    f"{type(request).__name__}"
                )
        assert isinstance(request, Mapping)
        if request.get("type") in ("http", "websocket") and "headers" in request:
            return self.from_asgi(request)
        if "REQUEST_METHOD" in request or "wsgi.version" in request:
            return self.from_environ(request)
        return self.from_headers(request)

    # -- starting -----------------------------------------------------------

    def start(self, ctx: RequestContext) -> Awaitable[None] | None:
        """Run the initializers, then ``on_request``; return its awaitable if it is async.

        Call it with `ctx` already visible (inside ``request_storage.scope(ctx)``).
        """
        run_request_initializers(ctx)
        hook = self.on_request
        if hook is None:
            return None
        result = hook(ctx)
        return result if inspect.isawaitable(result) else None

    def start_sync(self, ctx: RequestContext) -> None:
        """`start` for synchronous servers (WSGI).

        Raises:
            TypeError: the ``on_request`` hook is async.
        """
        pending = self.start(ctx)
        if pending is not None:
            if inspect.iscoroutine(pending):
                pending.close()
            raise TypeError(
                "on_request returned an awaitable in a synchronous (WSGI) server; "
                "make the hook a plain function there"
            )

    def response_headers(self, ctx: RequestContext) -> list[tuple[str, str]]:
        """The headers to add to the response: the id header, then ``ctx.response_headers()``."""
        return [(self.policy.header, ctx.request_id), *ctx.response_headers()]


async def _run_async(
    factory: RequestContextFactory, ctx: RequestContext, handler: Callable[[], Awaitable[R]]
) -> R:
    with request_storage.scope(ctx):
        pending = factory.start(ctx)
        if pending is not None:
            await pending
        return await handler()


def factory_or_options(
    factory: RequestContextFactory | None, options: dict[str, Any], where: str = ""
) -> RequestContextFactory:
    """`factory`, or a `RequestContextFactory` built from `options` (what middlewares take).

    Raises:
        TypeError: both are given, or an option is invalid.
    """
    if factory is None:
        return RequestContextFactory(**options)
    if options:
        raise TypeError(f"pass either factory=... or its options{where}, not both")
    return factory


def _run_sync(factory: RequestContextFactory, ctx: RequestContext, handler: Callable[[], R]) -> R:
    factory.start_sync(ctx)
    return handler()


def with_request_context(
    request: object,
    handler: Callable[[], R],
    *,
    factory: RequestContextFactory | None = None,
    **options: Any,
) -> R:
    """Run `handler()` as one request, for code that has no middleware.

    The Python form of Node's ``withRequestContext(req, res, handler)``:
    `request` is an ASGI scope, a WSGI environ or a plain mapping of headers
    (or a framework request object holding one). A `RequestContext` is built
    from it (the id policy applies), the initializers and ``on_request`` run,
    and `handler` runs with the context visible to everything it starts. An
    ``async`` handler makes the call return a coroutine to await.

    Args:
        factory: a shared `RequestContextFactory`; otherwise one is built from `options`
            (`on_request`, `header`, `generator`, `validator`, `trusted_proxies`,
            `reject_invalid`). Build it once for hot paths.

    Raises:
        TypeError: `handler` is not callable, `request` is of an unknown kind, or an
            async ``on_request`` hook is used with a synchronous handler.
        InvalidRequestId: the incoming id is invalid and ``reject_invalid`` is set.
    """
    if not callable(handler):
        raise TypeError(
            f"with_request_context() expected a zero-argument callable as handler, got "
            f"{type(handler).__name__}"
        )
    factory = factory_or_options(factory, options, " to with_request_context()")
    ctx = factory.from_request(request)
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004
    ):
        return _run_async(factory, ctx, handler)  # type: ignore[arg-type,return-value]
    return request_storage.run(ctx, _run_sync, factory, ctx, handler)
