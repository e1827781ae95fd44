"""gRPC (``grpcio``, sync and ``grpc.aio``): each call is a request; its context rides in metadata.

Server (one interceptor per server, sync or asyncio)::

    from asynclocal.integrations import grpc as al_grpc

    server = grpc.server(pool, interceptors=[al_grpc.ServerInterceptor()])
    server = grpc.aio.server(interceptors=[al_grpc.AioServerInterceptor()])

Client (the target is what the allow-list is checked against)::

    al_grpc.install()                                # every channel made from now on
    channel = al_grpc.intercept_channel(grpc.insecure_channel(target), target)
    interceptors = al_grpc.aio_client_interceptors(target)
    channel = grpc.aio.insecure_channel(target, interceptors=interceptors)

Guarantees:

* Server: every call (unary or streaming, in either direction) runs, for its
  whole life, in a new `RequestContext` built by the same
  `RequestContextFactory` as the HTTP middlewares: the ``x-request-id``
  metadata is validated and trusted by the `RequestIdPolicy` exactly like the
  HTTP header, the W3C trace and causation chain are continued (only from
  trusted peers when the policy names ``trusted_proxies``), initializers and
  ``on_request`` run. ``method`` is ``"GRPC"``, ``path`` and ``route`` the
  full method name (``/pkg.Service/Method``).
* The request id is echoed in the trailing metadata under the policy's header
  (lower-cased), also for aborted calls, and added to initial metadata the
  handler sends. A `RequestRejected` raised by the handler or ``on_request``
  ends the call with the matching status (`status_for`) and its public
  message; an invalid id with ``reject_invalid`` ends it with
  ``INVALID_ARGUMENT``. Incoming values are never echoed: the id sent back is
  the one the policy accepted or generated.
* Client: the propagated metadata (`asynclocal.propagation.inject`) is added
  to every call toward an allow-listed target (``grpc://host:port/method`` is
  matched against `asynclocal.propagation.configure(targets=...)` or the
  ``targets=`` given here); metadata the caller set wins. Toward any other
  target, copies of the propagated values are removed.

Needs the ``grpc`` extra.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, NamedTuple

try:
    import grpc
    import grpc.aio
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asynclocal.integrations.grpc needs the 'grpc' extra: pip install 'asynclocal[grpc]'"
    ) from exc

from .._patching import Patches
from ..errors import InvalidRequestId, RequestRejected
from ..propagation._outgoing import TargetsArg, resolve_targets
from ..propagation._targets import PropagationTargets
from ..request import OnRequest, RequestContext, RequestContextFactory, RequestIdPolicy
from ..request import request_storage as _requests
from ._hop import build_context, metadata_text, outgoing_pairs, rejection_status

__all__ = [
    "AioServerInterceptor",
    "ServerInterceptor",
    "aio_client_interceptors",
    "client_interceptors",
    "install",
    "installed",
    "intercept_channel",
    "status_for",
    "target_url",
    "uninstall",
]

_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ABORTED,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_for(exc: RequestRejected) -> Any:
    """The `grpc.StatusCode` answering `exc` (the usual HTTP to gRPC mapping).

    400 ``INVALID_ARGUMENT``, 401 ``UNAUTHENTICATED``, 403 ``PERMISSION_DENIED``,
    404 ``NOT_FOUND``, 409 ``ABORTED``, 429 ``RESOURCE_EXHAUSTED``, 503
    ``UNAVAILABLE``...; another 4xx is ``FAILED_PRECONDITION``, a 5xx ``INTERNAL``.
    """
    status = rejection_status(exc)
    code = _STATUS.get(status)
    if code is not None:
        return code
    return grpc.StatusCode.FAILED_PRECONDITION if status < 500 else grpc.StatusCode.INTERNAL


def _rejection_metadata(exc: RequestRejected) -> list[tuple[str, str]]:
    # Validated header pairs; gRPC metadata names are lower-case.
    return [
        (name.lower(), value) for name, value in exc.headers if not name.lower().startswith(":")
    ]


class _Peer(NamedTuple):
    host: str | None
    client: str | None


def _parse_peer(peer: object) -> _Peer:
    """``ipv4:1.2.3.4:5`` / ``ipv6:[::1]:5`` / ``unix:...`` as (host, client)."""
    if not isinstance(peer, str):
        return _Peer(None, None)
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        host = rest.rpartition(":")[0]
        return _Peer(host or None, rest or None)
    if kind == "ipv6":
        host = rest.rpartition("]")[0].lstrip("[") if rest.startswith("[") else rest
        return _Peer(host or None, host or None)
    return _Peer(None, None)


def _method_name(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _merge(existing: object, ours: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    names = {name for name, _ in ours}
    kept = [
        (name, value)
        for name, value in (existing or ())  # type: ignore[attr-defined]
        if not (isinstance(name, str) and name.lower() in names)
    ]
    return (*kept, *ours)


class _Server:
    """What the sync and asyncio server interceptors share."""

    def __init__(
        self,
        factory: RequestContextFactory | None,
        policy: RequestIdPolicy | None,
        on_request: OnRequest | None,
    ) -> None:
        if factory is not None and (policy is not None or on_request is not None):
            raise TypeError("pass either factory=... or policy=/on_request=, not both")
        if factory is not None and not isinstance(factory, RequestContextFactory):
            raise TypeError(
                f"factory must be a RequestContextFactory, got {type(factory).__name__}"
            )
        # A call is a hop between services: it continues its caller unless a given
        # factory says otherwise (continue_trace=False).
        self.factory = factory or RequestContextFactory(
            policy=policy, on_request=on_request, continue_trace=True
        )
        self.header = self.factory.policy.header_lower

    def context_for(self, servicer_context: Any, method: str) -> RequestContext:
        """Raises InvalidRequestId (reject_invalid)."""
        peer = _parse_peer(servicer_context.peer())
        metadata = metadata_text(servicer_context.invocation_metadata())
        return build_context(
            self.factory,
            metadata,
            method="GRPC",
            path=method,
            peer_host=peer.host,
            client=peer.client,
        )

    def echo(
        self, servicer_context: Any, request_id: str, extra: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Make sure the trailing metadata carries the id (and `extra`), keeping the handler's."""
        ours = ((self.header, request_id), *extra)
        try:
            current = servicer_context.trailing_metadata()
        except Exception:  # an older grpcio without trailing_metadata()
            current = None
        servicer_context.set_trailing_metadata(_merge(current, ours))


def _wrap_handler(
    handler: Any, wrap: Callable[[Callable[..., Any], bool, bool], Callable[..., Any]]
) -> Any:
    """`handler` with its behaviour wrapped by ``wrap(behaviour, request_streaming,
    response_streaming)``."""
    if handler is None:
        return None
    req, resp = bool(handler.request_streaming), bool(handler.response_streaming)
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if req and resp:
        return grpc.stream_stream_rpc_method_handler(
            wrap(handler.stream_stream, req, resp), **kwargs
        )
    if req:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, req, resp), **kwargs)
    if resp:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, req, resp), **kwargs)
    return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, req, resp), **kwargs)


class _ContextProxy:
    """The servicer context a handler sees: initial metadata it sends gets the request id."""

    __slots__ = ("_ours", "_real")

    def __init__(self, real: Any, ours: tuple[str, str]) -> None:
        self._real = real
        self._ours = ours

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def send_initial_metadata(self, initial_metadata: Any) -> Any:
        return self._real.send_initial_metadata(_merge(initial_metadata, (self._ours,)))

    def set_trailing_metadata(self, trailing_metadata: Any) -> Any:
        return self._real.set_trailing_metadata(_merge(trailing_metadata, (self._ours,)))


class _AioContextProxy(_ContextProxy):
    """`_ContextProxy` for ``grpc.aio``: `abort` with its own trailing metadata keeps the id."""

    __slots__ = ()

    async def abort(self, code: Any, details: str = "", trailing_metadata: Any = ()) -> Any:
        if trailing_metadata:
            trailing_metadata = _merge(trailing_metadata, (self._ours,))
        return await self._real.abort(code, details, trailing_metadata)


class ServerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """A `grpc.ServerInterceptor` (sync server) running each call in its own request context.

    Args:
        factory: a shared `RequestContextFactory` (the HTTP middlewares' one, say).
        policy: the `RequestIdPolicy` (when no `factory`); default `RequestIdPolicy()`.
        on_request: the app hook run at the start of every call (when no `factory`).

    Raises:
        TypeError: both `factory` and `policy`/`on_request` are given, or a wrong type.
    """

    def __init__(
        self,
        *,
        factory: RequestContextFactory | None = None,
        policy: RequestIdPolicy | None = None,
        on_request: OnRequest | None = None,
    ) -> None:
        self._server = _Server(factory, policy, on_request)

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        method = _method_name(getattr(handler_call_details, "method", ""))
        return _wrap_handler(
            continuation(handler_call_details),
            functools.partial(self._wrap, method),
        )

    def _wrap(
        self, method: str, behaviour: Callable[..., Any], _req: bool, resp: bool
    ) -> Callable[..., Any]:
        server = self._server

        def start(servicer_context: Any) -> tuple[contextvars.Context, RequestContext] | None:
            run_in = contextvars.copy_context()
            try:
                ctx = server.context_for(servicer_context, method)
            except InvalidRequestId as exc:
                server.echo(servicer_context, server.factory.policy.new_id())
                servicer_context.abort(status_for(exc), exc.public_message)
                return None  # pragma: no cover - abort raises
            server.echo(servicer_context, ctx.request_id)
            run_in.run(_requests.context_var.set, ctx)
            try:
                run_in.run(server.factory.start_sync, ctx)
            except RequestRejected as exc:
                reject(servicer_context, ctx, exc)
            return run_in, ctx

        def reject(servicer_context: Any, ctx: RequestContext, exc: RequestRejected) -> None:
            server.echo(servicer_context, ctx.request_id, _rejection_metadata(exc))
            servicer_context.abort(status_for(exc), exc.public_message)

        def call(request: Any, servicer_context: Any) -> Any:
            started = start(servicer_context)
            assert started is not None
            run_in, ctx = started
            proxy = _ContextProxy(servicer_context, (server.header, ctx.request_id))
            try:
                return run_in.run(behaviour, request, proxy)
            except RequestRejected as exc:
                reject(servicer_context, ctx, exc)
            finally:
                server.echo(servicer_context, ctx.request_id)

        if not resp:
            return call

        def stream(request: Any, servicer_context: Any) -> Iterator[Any]:
            started = start(servicer_context)
            assert started is not None
            run_in, ctx = started
            proxy = _ContextProxy(servicer_context, (server.header, ctx.request_id))
            try:
                responses = iter(run_in.run(behaviour, request, proxy))
                while True:
                    try:
                        item = run_in.run(next, responses)
                    except StopIteration:
                        return
                    yield item
            except RequestRejected as exc:
                reject(servicer_context, ctx, exc)
            finally:
                server.echo(servicer_context, ctx.request_id)

        return stream


class AioServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """The `ServerInterceptor` for ``grpc.aio`` servers (same arguments, same guarantees).

    Async handlers (coroutines and async generators) run inside the call's
    context for the whole call; each call runs in its own asyncio task.
    """

    def __init__(
        self,
        *,
        factory: RequestContextFactory | None = None,
        policy: RequestIdPolicy | None = None,
        on_request: OnRequest | None = None,
    ) -> None:
        self._server = _Server(factory, policy, on_request)

    async def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        method = _method_name(getattr(handler_call_details, "method", ""))
        handler = await continuation(handler_call_details)
        return _wrap_handler(handler, functools.partial(self._wrap, method))

    def _wrap(
        self, method: str, behaviour: Callable[..., Any], _req: bool, resp: bool
    ) -> Callable[..., Any]:
        server = self._server

        async def start(servicer_context: Any) -> tuple[RequestContext, contextvars.Token[Any]]:
            try:
                ctx = server.context_for(servicer_context, method)
            except InvalidRequestId as exc:
                fresh = server.factory.policy.new_id()
                await servicer_context.abort(
                    status_for(exc), exc.public_message, ((server.header, fresh),)
                )
                raise  # pragma: no cover - abort raises
            server.echo(servicer_context, ctx.request_id)
            token = _requests.context_var.set(ctx)
            try:
                pending = server.factory.start(ctx)
                if pending is not None:
                    await pending
            except RequestRejected as exc:
                _requests.context_var.reset(token)
                await reject(servicer_context, ctx, exc)
            return ctx, token

        async def reject(servicer_context: Any, ctx: RequestContext, exc: RequestRejected) -> None:
            server.echo(servicer_context, ctx.request_id, _rejection_metadata(exc))
            await servicer_context.abort(
                status_for(exc), exc.public_message, servicer_context.trailing_metadata()
            )

        def reset(token: contextvars.Token[Any]) -> None:
            try:
                _requests.context_var.reset(token)
            except ValueError:  # pragma: no cover - finished in another context
                pass

        async def call(request: Any, servicer_context: Any) -> Any:
            ctx, token = await start(servicer_context)
            proxy = _AioContextProxy(servicer_context, (server.header, ctx.request_id))
            try:
                return await behaviour(request, proxy)
            except RequestRejected as exc:
                await reject(servicer_context, ctx, exc)
            finally:
                server.echo(servicer_context, ctx.request_id)
                reset(token)

        if not resp:
            return call

        async def stream(request: Any, servicer_context: Any) -> AsyncIterator[Any]:
            ctx, token = await start(servicer_context)
            proxy = _AioContextProxy(servicer_context, (server.header, ctx.request_id))
            try:
                result = behaviour(request, proxy)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:  # a coroutine writing with context.write()
                    await result
            except RequestRejected as exc:
                await reject(servicer_context, ctx, exc)
            finally:
                server.echo(servicer_context, ctx.request_id)
                reset(token)

        return stream


# --- client ----------------------------------------------------------------------------


def target_url(target: str, method: str = "") -> str:
    """The URL a channel `target` and a full `method` name are matched as: ``grpc://host:port/m``.

    ``dns:///host:port``, ``ipv4:``/``ipv6:`` targets and bare ``host:port``
    are understood; a target without a port gets 443 (gRPC's default). A unix
    socket target becomes ``unix:path``, which host patterns never match.
    """
    text = target.strip()
    if text.startswith("unix:") or text.startswith("unix-abstract:"):
        return text
    for prefix in ("dns:", "ipv4:", "ipv6:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            if text.startswith("//"):
                text = text[2:].split("/", 1)[-1] if "/" in text[2:] else ""
            break
    text = text.split(",", 1)[0]
    if text.startswith("["):
        end = text.find("]")
        hostport = text if end < 0 or ":" in text[end:] else f"{text}:443"
    elif text.count(":") == 1:
        hostport = text
    elif ":" in text:  # a bare IPv6 address
        hostport = f"[{text}]:443"
    else:
        hostport = f"{text}:443"
    path = method if method.startswith("/") else f"/{method}" if method else ""
    return f"grpc://{hostport}{path}"


def _outgoing(
    metadata: object, url: str, targets: PropagationTargets | None
) -> list[tuple[str, Any]] | None:
    """The call's metadata with the propagated pairs added (or leaked copies removed)."""
    pairs: list[tuple[str, Any]] = list(metadata or ())  # type: ignore[call-overload]
    ours, allowed = outgoing_pairs(url, targets)
    if not ours:
        return None
    present = {str(name).lower(): value for name, value in pairs}
    changed = False
    for name, value in ours.items():
        if allowed:
            if name not in present:
                pairs.append((name, value))
                changed = True
        elif present.get(name) == value:
            pairs = [(n, v) for n, v in pairs if not (str(n).lower() == name and v == value)]
            changed = True
    return pairs if changed else None


class _SyncDetails(
    NamedTuple(
        "_SyncDetails",
        [
            ("method", Any),
            ("timeout", Any),
            ("metadata", Any),
            ("credentials", Any),
            ("wait_for_ready", Any),
            ("compression", Any),
        ],
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]
):
    """A `grpc.ClientCallDetails` with new metadata."""


class _ClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(self, target: str, targets: PropagationTargets | None) -> None:
        self.target = target
        self.targets = targets

    def _details(self, details: Any) -> Any:
        url = target_url(self.target, _method_name(details.method))
        metadata = _outgoing(details.metadata, url, self.targets)
        if metadata is None:
            return details
        return _SyncDetails(
            details.method,
            details.timeout,
            tuple(metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(details), request_iterator)


def client_interceptors(target: str, *, targets: TargetsArg = None) -> list[Any]:
    """Interceptors for a sync channel to `target` (give them to `grpc.intercept_channel`).

    Raises:
        TypeError: `target` is not a str; ValueError / TypeError: a malformed pattern.
    """
    if not isinstance(target, str):
        raise TypeError(f"target must be the channel's target string, got {type(target).__name__}")
    return [_ClientInterceptor(target, resolve_targets(targets))]


def intercept_channel(channel: Any, target: str, *, targets: TargetsArg = None) -> Any:
    """`channel` (sync, made for `target`) with the propagation interceptor in front."""
    return grpc.intercept_channel(channel, *client_interceptors(target, targets=targets))


class _AioClientInterceptor:
    def __init__(self, target: str, targets: PropagationTargets | None) -> None:
        self.target = target
        self.targets = targets

    def _details(self, details: Any) -> Any:
        url = target_url(self.target, _method_name(details.method))
        metadata = _outgoing(details.metadata, url, self.targets)
        if metadata is None:
            return details
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*metadata),
            details.credentials,
            details.wait_for_ready,
        )


class _AioUnaryUnary(_AioClientInterceptor, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AioUnaryStream(_AioClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AioStreamUnary(_AioClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _AioStreamStream(_AioClientInterceptor, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def aio_client_interceptors(target: str, *, targets: TargetsArg = None) -> list[Any]:
    """Interceptors for ``grpc.aio.insecure_channel(target, interceptors=...)`` (one per RPC kind).

    Raises:
        TypeError: `target` is not a str; ValueError / TypeError: a malformed pattern.
    """
    if not isinstance(target, str):
        raise TypeError(f"target must be the channel's target string, got {type(target).__name__}")
    resolved = resolve_targets(targets)
    return [
        kind(target, resolved)
        for kind in (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary, _AioStreamStream)
    ]


_patches = Patches()


def _patched_sync(
    original: Callable[..., Any], targets: PropagationTargets | None
) -> Callable[..., Any]:
    @functools.wraps(original)
    def make(target: str, *args: Any, **kwargs: Any) -> Any:
        return intercept_channel(original(target, *args, **kwargs), target, targets=targets)

    return make


def _patched_aio(
    original: Callable[..., Any], targets: PropagationTargets | None
) -> Callable[..., Any]:
    @functools.wraps(original)
    def make(target: str, *args: Any, interceptors: Any = None, **kwargs: Any) -> Any:
        ours = aio_client_interceptors(target, targets=targets)
        return original(target, *args, interceptors=[*(interceptors or ()), *ours], **kwargs)

    return make


def install(*, targets: TargetsArg = None) -> None:
    """Make every channel created from now on by ``grpc.insecure_channel``/``secure_channel``
    and ``grpc.aio.insecure_channel``/``secure_channel`` propagate (looked up on the module:
    names imported with ``from grpc import insecure_channel`` before this call are not patched).

    Idempotent; a second call replaces `targets`. `uninstall()` undoes it.

    Raises:
        ValueError / TypeError: a target pattern is malformed.
    """
    resolved = resolve_targets(targets)
    with _patches.lock:
        patches = [
            (owner, name, make(_patches.original(owner, name), resolved))
            for owner, make in ((grpc, _patched_sync), (grpc.aio, _patched_aio))
            for name in ("insecure_channel", "secure_channel")
        ]
        _patches.install(patches)


def uninstall() -> None:
    """Undo `install()` for channels created from now on. Idempotent."""
    _patches.uninstall()


def installed() -> bool:
    """Whether `install()` is in effect."""
    return _patches.installed
