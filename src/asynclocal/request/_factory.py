"""Starting a request, independent of any framework: the one request factory.

`RequestContextFactory` turns what every ingress knows (method, path, headers,
peer address) into a `RequestContext`: the `RequestIdPolicy` decides the id and
the causation chain, the caller's trace is continued (``continue_trace``), the
registered request initializers run and then the app's ``on_request`` hook.
Every web integration, the Lambda wrapper, the task workers and
`with_request_context` go through it, so they all behave the same.
"""

from __future__ import annotations

import contextvars
import inspect
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from contextvars import Token
from typing import TYPE_CHECKING, Any, TypeVar

from .._fallback import reset_or_restore
from .._options import checked_options
from .._snapshot import run_coroutine_in
from . import _context as _context_module
from ._context import (
    LAZY,
    RequestContext,
    encoded_response_headers,
    new_request_context,
    request_storage,
    run_request_initializers,
)
from ._ids import Network, RequestIdPolicy, generate_request_id

if TYPE_CHECKING:
    from ..propagation._continue import _Continuer

__all__ = [
    "OnRequest",
    "RequestContextFactory",
    "continue_trace_default",
    "enter_request",
    "leave_request",
    "set_continue_trace_default",
    "with_request_context",
]

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

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            # `headers` and `client` come from the scope on first read (most
            # requests never read them; the request id is decided without them).
            if name == "headers":
                value = _LazyHeaders(self._scope.get("headers") or ())
            elif name == "client":
                peer = self._scope.get("client")
                value = f"{peer[0]}:{peer[1]}" if peer else None
            else:
                return RequestContext.__getattr__(self, name)
            object.__setattr__(self, name, value)
            return value


_as_bytes: dict[frozenset[str], frozenset[bytes]] = {}

_request_var = request_storage.context_var

# The process-wide default of ``continue_trace`` for factories built without it:
# on, changed only by an explicit `asynclocal.propagation.install()`/`uninstall()`.
_continue_default = True


def set_continue_trace_default(value: bool) -> None:
    """Set the process-wide ``continue_trace`` default (`propagation.install/uninstall`)."""
    global _continue_default
    _continue_default = bool(value)


def continue_trace_default() -> bool:
    """The process-wide ``continue_trace`` default (True unless `propagation.uninstall()` ran)."""
    return _continue_default


def enter_request(ctx: RequestContext) -> Token[RequestContext | None]:
    """Make `ctx` the current request in this context; `leave_request` undoes it."""
    return _request_var.set(ctx)


def leave_request(token: Token[RequestContext | None], ctx: RequestContext) -> None:
    """Undo `enter_request`, even when resumed in another context (the one reset-or-restore).

    A token set in another `contextvars.Context` cannot be reset; the previous
    value is then put back by hand when `ctx` is still the current store.
    """
    try:
        _request_var.reset(token)
    except ValueError:
        reset_or_restore(_request_var, token, ctx, None)


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
        policy: the `RequestIdPolicy` (id header, generator, validator, trust, reuse of
            the caller's id); built from the policy keywords below when omitted.
        on_request: the app's hook ``on_request(ctx)`` (sync or ``async``), run after
            the registered initializers, inside the request's context.
        continue_trace: continue the caller's trace and causation chain
            (``traceparent``/``tracestate``/``baggage`` and the root/parent ids the
            policy trusts). None (default) follows the process-wide default, which
            is on; `asynclocal.propagation.uninstall()` turns that default off.
        header, generator, validator, trusted_proxies, reject_invalid, reuse_request_id:
            `RequestIdPolicy` arguments, when no `policy` is given.

    Raises:
        UnknownOptionError: an unknown keyword (a typo); the message lists the valid ones.
        ConfigurationError: a value is unusable.
        TypeError: both `policy` and policy keywords were given, `on_request` is not
            callable, or an option has the wrong type.
    """

    __slots__ = (
        "_continuer",
        "_environ_id_keys",
        "_environ_keys",
        "_header_bytes",
        "_http_key",
        "_wanted",
        "_wanted_ids",
        "continue_trace",
        "on_request",
        "policy",
    )

    @checked_options
    def __init__(
        self,
        *,
        policy: RequestIdPolicy | None = None,
        on_request: OnRequest | None = None,
        continue_trace: bool | None = None,
        header: str | None = None,
        generator: Callable[[], str] | None = None,
        validator: Callable[[str], bool] | None = None,
        trusted_proxies: Iterable[str | Network] | None = None,
        reject_invalid: bool | None = None,
        reuse_request_id: bool | None = None,
    ) -> None:
        given: dict[str, Any] = {
            name: value
            for name, value in (
                ("header", header),
                ("generator", generator),
                ("validator", validator),
                ("trusted_proxies", trusted_proxies),
                ("reject_invalid", reject_invalid),
                ("reuse_request_id", reuse_request_id),
            )
            if value is not None
        }
        if policy is not None:
            if given:
                raise TypeError(
                    "pass either policy=RequestIdPolicy(...) or its options "
                    f"({', '.join(sorted(given))}), not both"
                )
            if not isinstance(policy, RequestIdPolicy):
                raise TypeError(f"policy must be a RequestIdPolicy, got {type(policy).__name__}")
        if on_request is not None and not callable(on_request):
            raise TypeError(
                "on_request must be a callable(ctx), sync or async, got "
                f"{type(on_request).__name__}"
            )
        if continue_trace is not None and not isinstance(continue_trace, bool):
            raise TypeError(
                f"continue_trace must be a bool or None, got {type(continue_trace).__name__}"
            )
        self.policy = policy if policy is not None else RequestIdPolicy(**given)
        self.on_request = on_request
        self.continue_trace = continue_trace
        self._continuer: _Continuer | None = None
        pol = self.policy
        self._header_bytes = pol.header_bytes
        self._http_key = "HTTP_" + pol.header.upper().replace("-", "_")
        ids = {pol.header_bytes: pol.header_lower}
        if pol.root_header_bytes is not None and pol.root_header_lower is not None:
            ids[pol.root_header_bytes] = pol.root_header_lower
        self._wanted_ids: dict[bytes, str] = ids
        self._wanted: dict[bytes, str] = {
            **ids,
            b"traceparent": "traceparent",
            b"tracestate": "tracestate",
            b"baggage": "baggage",
        }
        self._environ_keys: tuple[tuple[str, str], ...] = tuple(
            (name, "HTTP_" + name.upper().replace("-", "_")) for name in self._wanted.values()
        )
        self._environ_id_keys = self._environ_keys[: len(ids)]

    @property
    def header(self) -> str:
        """The request/response header carrying the id."""
        return self.policy.header

    def continues(self) -> bool:
        """Whether requests built now continue the caller's trace and chain."""
        value = self.continue_trace
        return _continue_default if value is None else value

    def _trace(self) -> _Continuer:
        continuer = self._continuer
        if continuer is None:
            # Imported on first use: propagation builds on this package, not the reverse.
            from ..propagation._continue import CONTINUER

            continuer = self._continuer = CONTINUER
        return continuer

    # -- building -----------------------------------------------------------

    def _build(
        self,
        cls: type[_C],
        found: Mapping[str, str] | None,
        host: str | None,
        method: str,
        path: str,
        client: str | None,
        headers: Mapping[str, str],
        continues: bool,
        own_id: str | None = None,
    ) -> _C:
        """The context, given the governed headers that came in (`found`, lower-case names)."""
        policy = self.policy
        if found is None:
            rid = policy.new_id() if own_id is None else own_id
            ctx = new_request_context(cls, rid, method, path, client, headers, rid, None)
            if continues:
                self._trace().start(ctx)
            return ctx
        root_name = policy.root_header_lower
        rid, root, parent = policy.decide(
            found.get(policy.header_lower),
            found.get(root_name) if continues and root_name is not None else None,
            host,
            own_id,
        )
        ctx = new_request_context(cls, rid, method, path, client, headers, root, parent)
        if continues:
            traceparent = found.get("traceparent")
            baggage = found.get("baggage")
            if (traceparent is None and baggage is None) or not policy.trusts(host):
                self._trace().start(ctx)
            else:
                self._trace().follow(ctx, traceparent, found.get("tracestate"), baggage)
        return ctx

    def from_asgi(self, scope: Mapping[str, Any]) -> RequestContext:
        """The context for an ASGI ``http`` or ``websocket`` scope.

        Raises:
            InvalidRequestId: the incoming id is invalid and the policy rejects it.
        """
        continues = self.continue_trace
        if continues is None:
            continues = _continue_default
        wanted = self._wanted if continues else self._wanted_ids
        found: dict[str, str] | None = None
        repeats: dict[str, list[str]] | None = None
        raw = scope.get("headers") or ()
        for name, value in raw:
            key = wanted.get(name)
            if key is not None:
                text = value.decode("latin-1")
                if found is None:
                    found = {key: text}
                elif key not in found:
                    found[key] = text
                else:
                    # A repeated header is joined as WSGI servers and Django do (once,
                    # below: linear); for the id header no validator accepts the
                    # result, so it counts as invalid.
                    if repeats is None:
                        repeats = {}
                    repeats.setdefault(key, [found[key]]).append(text)
        client = scope.get("client")
        if found is None:
            # The common case, spelled out: nothing came in that the policy governs.
            policy = self.policy
            rid = generate_request_id() if policy._default_generator else policy.new_id()
            ctx = new_request_context(
                AsgiRequestContext,
                rid,
                scope.get("method", "GET"),
                scope.get("path", ""),
                LAZY,
                LAZY,
                rid,
                None,
            )
            if continues:
                (self._continuer or self._trace()).start(ctx)
        else:
            if repeats is not None:
                for key, parts in repeats.items():
                    found[key] = ", ".join(parts)
            ctx = self._build(
                AsgiRequestContext,
                found,
                client[0] if client else None,
                scope.get("method", "GET"),
                scope.get("path", ""),
                LAZY,
                LAZY,
                continues,
            )
        ctx._scope = scope
        return ctx

    def from_environ(self, environ: Mapping[str, Any]) -> RequestContext:
        """The context for a WSGI environ (also Django's ``request.META``).

        Raises:
            InvalidRequestId: the incoming id is invalid and the policy rejects it.
        """
        continues = self.continue_trace
        if continues is None:
            continues = _continue_default
        found: dict[str, str] | None = None
        for name, key in self._environ_keys if continues else self._environ_id_keys:
            value = environ.get(key)
            if isinstance(value, str):
                if found is None:
                    found = {}
                found[name] = value
        host = environ.get("REMOTE_ADDR") or None
        port = environ.get("REMOTE_PORT")
        return self._build(
            RequestContext,
            found,
            host,
            environ.get("REQUEST_METHOD", "GET"),
            _wsgi_text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")),
            (f"{host}:{port}" if port else host) if host else None,
            _LazyHeaders(environ, True),
            continues,
        )

    def from_headers(
        self,
        headers: Mapping[str, str],
        *,
        method: str = "",
        path: str = "",
        client: str | None = None,
        peer_host: str | None = None,
        own_id: str | None = None,
    ) -> RequestContext:
        """The context for a plain mapping of headers (names in any case).

        Also what non-HTTP ingresses use (the Lambda wrapper, task workers): their
        carrier is `headers`, and `own_id` (the invocation's or task's id) is the
        request's id unless it continues an asynclocal caller with
        ``reuse_request_id`` (see `RequestIdPolicy.decide`).

        `client` is the peer, ``"host:port"`` or a bare host; trust is decided on
        `peer_host` when given, else on the host part of `client`.

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
        host = peer_host
        if host is None:
            host = client.rsplit(":", 1)[0] if client and client.count(":") == 1 else client
        continues = self.continues()
        names = self._wanted.values() if continues else self._wanted_ids.values()
        found = {name: lowered[name] for name in names if name in lowered} or None
        return self._build(
            RequestContext, found, host, method, path, client, lowered, continues, own_id
        )

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
        if _context_module._initializers:
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

    def extra_asgi_headers(self, ctx: RequestContext) -> list[tuple[bytes, bytes]]:
        """``ctx.response_headers()`` encoded for ASGI (lower-case names); [] when none."""
        return encoded_response_headers(ctx)


_C = TypeVar("_C", bound=RequestContext)


async def _run_async(
    factory: RequestContextFactory, ctx: RequestContext, handler: Callable[[], Awaitable[R]]
) -> R:
    request_storage.enter_with(ctx)  # in the private copy of the context
    pending = factory.start(ctx)
    if pending is not None:
        await pending
    return await handler()


def build_factory(
    factory: RequestContextFactory | None,
    where: str,
    *,
    policy: RequestIdPolicy | None = None,
    on_request: OnRequest | None = None,
    continue_trace: bool | None = None,
    header: str | None = None,
    generator: Callable[[], str] | None = None,
    validator: Callable[[str], bool] | None = None,
    trusted_proxies: Iterable[str | Network] | None = None,
    reject_invalid: bool | None = None,
    reuse_request_id: bool | None = None,
) -> RequestContextFactory:
    """`factory`, or a `RequestContextFactory` built from the options (what setups take).

    Raises:
        TypeError: both a factory and options are given.
        ConfigurationError: an option is unusable.
    """
    options: dict[str, Any] = {
        name: value
        for name, value in (
            ("policy", policy),
            ("on_request", on_request),
            ("continue_trace", continue_trace),
            ("header", header),
            ("generator", generator),
            ("validator", validator),
            ("trusted_proxies", trusted_proxies),
            ("reject_invalid", reject_invalid),
            ("reuse_request_id", reuse_request_id),
        )
        if value is not None
    }
    if factory is None:
        return RequestContextFactory(**options)
    if not isinstance(factory, RequestContextFactory):
        raise TypeError(f"factory must be a RequestContextFactory, got {type(factory).__name__}")
    if options:
        raise TypeError(
            f"pass either factory=... or its options ({', '.join(sorted(options))}) to {where}, "
            "not both"
        )
    return factory


def _run_sync(factory: RequestContextFactory, ctx: RequestContext, handler: Callable[[], R]) -> R:
    request_storage.enter_with(ctx)  # in the private copy of the context
    factory.start_sync(ctx)
    return handler()


@checked_options
def with_request_context(
    request: object,
    handler: Callable[[], R],
    *,
    factory: RequestContextFactory | None = None,
    policy: RequestIdPolicy | None = None,
    on_request: OnRequest | None = None,
    continue_trace: bool | None = None,
    header: str | None = None,
    generator: Callable[[], str] | None = None,
    validator: Callable[[str], bool] | None = None,
    trusted_proxies: Iterable[str | Network] | None = None,
    reject_invalid: bool | None = None,
    reuse_request_id: bool | None = None,
) -> R:
    """Run `handler()` as one request, in a new context, for code that has no middleware.

    The Python form of Node's ``withRequestContext(req, res, handler)``:
    `request` is an ASGI scope, a WSGI environ or a plain mapping of headers
    (or a framework request object holding one). A `RequestContext` is built
    from it (the id policy applies), the initializers and ``on_request`` run,
    and `handler` runs with the context visible to everything it starts. An
    ``async`` handler makes the call return a coroutine to await.

    The handler runs in a copy of the caller's context: whatever it sets (in any
    `AsyncLocalStorage`, by `enter_with` included, or any `ContextVar`) is seen
    neither by the caller afterwards nor by the next request.

    Args:
        factory: a shared `RequestContextFactory`; otherwise one is built from the
            other options (those of `RequestContextFactory`). Build it once for hot paths.

    Raises:
        UnknownOptionError: an unknown keyword; the message lists the valid ones.
        TypeError: `handler` is not callable, `request` is of an unknown kind, or an
            async ``on_request`` hook is used with a synchronous handler.
        InvalidRequestId: the incoming id is invalid and ``reject_invalid`` is set.
    """
    if not callable(handler):
        raise TypeError(
            f"with_request_context() expected a zero-argument callable as handler, got "
            f"{type(handler).__name__}"
        )
    factory = build_factory(
        factory,
        "with_request_context()",
        policy=policy,
        on_request=on_request,
        continue_trace=continue_trace,
        header=header,
        generator=generator,
        validator=validator,
        trusted_proxies=trusted_proxies,
        reject_invalid=reject_invalid,
        reuse_request_id=reuse_request_id,
    )
    ctx = factory.from_request(request)
    context = contextvars.copy_context()
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004
    ):
        coro: Any = context.run(_run_async, factory, ctx, handler)  # type: ignore[arg-type]
        return run_coroutine_in(context, coro)  # type: ignore[return-value]
    result = context.run(_run_sync, factory, ctx, handler)
    if inspect.iscoroutine(result):
        # A plain function that returned a coroutine (``lambda: handler(n)``):
        # every step of it still runs in the request's context.
        return run_coroutine_in(context, result)  # type: ignore[return-value]
    return result
