"""httpx auth that sends the current request's token and refreshes it once per request.

Needs the ``httpx`` extra. A call that carries the request's token and refreshes it once
when it has expired::

    auth = ContextBearerAuth(token_url="https://auth.internal/token")
    api = httpx.AsyncClient(base_url="https://api.internal", auth=auth)

    async def fetch_me():                    # no token argument anywhere
        return (await api.get("/me")).json()

Every call sends ``Authorization: Bearer <ctx.access_token>`` of the request
being served. On a 401 the request's ``refresh_token`` buys a new access token
(from `token_url`, OAuth 2 ``grant_type=refresh_token``, or from your
`refresh` callable); the `RequestContext` is updated, so every later call of
the same request uses the new token; the failed call is retried once.
Concurrent calls of one request that all get a 401 refresh once: the first
refreshes under a per-request lock (an `asyncio.Lock` for the async flow, a
`threading.Lock` for the sync flow), the others wait and reuse its result.
A refresh that fails raises `TokenRefreshError` (HTTP 401 through the web
middleware) for every waiting call, without retrying it N times. Other
requests never see this request's tokens or its lock.
"""

from __future__ import annotations

from ..errors import TokenRefreshError

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "asynclocal.patterns.auth needs the 'httpx' extra: pip install 'asynclocal[httpx]'"
    ) from exc

import asyncio
import inspect
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass

from ..request._context import RequestContext, current_request

__all__ = ["ContextBearerAuth", "TokenRefreshError", "Tokens", "refresh_count"]

_KEY = "asynclocal.auth.refresh"


@dataclass(frozen=True)
class Tokens:
    """What a refresh returns: a new access token and, when rotated, a new refresh token."""

    access_token: str
    refresh_token: str | None = None

    def __repr__(self) -> str:
        return "Tokens(access_token=<hidden>, refresh_token=<hidden>)"


#: ``refresh(refresh_token) -> Tokens | str`` (or an awaitable of it, for the async flow).
RefreshFn = Callable[[str], "Tokens | str | Awaitable[Tokens | str]"]


class _RefreshState:
    """Per-request refresh bookkeeping, kept in an app field of the `RequestContext`."""

    __slots__ = ("async_lock", "error", "failed_token", "refreshes", "thread_lock")

    def __init__(self) -> None:
        self.async_lock = asyncio.Lock()
        self.thread_lock = threading.Lock()
        self.failed_token: str | None = None
        self.error: TokenRefreshError | None = None
        self.refreshes = 0


def _state_of(ctx: RequestContext) -> _RefreshState:
    state = ctx.get(_KEY)
    if state is None:
        state = ctx.set_if_absent(_KEY, _RefreshState())
    assert isinstance(state, _RefreshState)
    return state


def refresh_count() -> int:
    """How many refresh attempts the current request has made (0 outside a request)."""
    from ..request._context import request_storage

    ctx = request_storage.get_store()
    state = None if ctx is None else ctx.get(_KEY)
    return state.refreshes if isinstance(state, _RefreshState) else 0


class ContextBearerAuth(httpx.Auth):
    """httpx `Auth` (sync and async clients) using the current request's tokens.

    Args:
        token_url: the token endpoint; it receives a form POST
            ``grant_type=refresh_token&refresh_token=...`` (plus `token_params`) and
            must answer JSON with ``access_token`` (and optionally a rotated
            ``refresh_token``).
        refresh: instead of `token_url`, a callable ``refresh(refresh_token)``
            returning `Tokens` or the new access token; it may be ``async`` for
            the async flow (the sync flow needs a plain function).
        token_params: extra form fields for the token endpoint (``client_id``...).
        scheme: the authorization scheme, ``Bearer`` by default.
        timeout: seconds for the token endpoint call.
        token_client: an `httpx.Client` (sync flow) or `httpx.AsyncClient` (async
            flow) to call `token_url` with; by default one sync client, and one
            async client per event loop, are opened on first use and reused.

    Raises:
        TypeError: neither or both of `token_url` and `refresh` are given, or one
            has the wrong type.
    """

    requires_request_body = True

    def __init__(
        self,
        *,
        token_url: str | None = None,
        refresh: RefreshFn | None = None,
        token_params: Mapping[str, str] | None = None,
        scheme: str = "Bearer",
        timeout: float = 10.0,
        token_client: httpx.Client | httpx.AsyncClient | None = None,
    ) -> None:
        if (token_url is None) == (refresh is None):
            raise TypeError(
                "ContextBearerAuth needs exactly one of token_url='https://.../token' or "
                "refresh=callable(refresh_token) -> Tokens"
            )
        if token_url is not None and (
            not isinstance(token_url, str) or not token_url.startswith(("http://", "https://"))
        ):
            raise TypeError(f"token_url must be an http(s) URL string, got {token_url!r:.60}")
        if refresh is not None and not callable(refresh):
            raise TypeError(f"refresh must be a callable, got {type(refresh).__name__}")
        if not isinstance(scheme, str) or not scheme or " " in scheme:
            raise TypeError(f"scheme must be one word such as 'Bearer', got {scheme!r:.40}")
        self._token_url = token_url
        self._refresh = refresh
        self._params = dict(token_params or {})
        self._scheme = scheme
        self._timeout = timeout
        if token_client is not None and not isinstance(
            token_client, (httpx.Client, httpx.AsyncClient)
        ):
            raise TypeError(
                "token_client must be an httpx.Client or httpx.AsyncClient, "
                f"got {type(token_client).__name__}"
            )
        self._client: httpx.Client | None = (
            token_client if isinstance(token_client, httpx.Client) else None
        )
        self._given_async_client = (
            token_client if isinstance(token_client, httpx.AsyncClient) else None
        )
        # An AsyncClient belongs to one event loop: one per loop, dropped with it.
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, httpx.AsyncClient
        ] = weakref.WeakKeyDictionary()
        self._client_lock = threading.Lock()

    # -- shared -------------------------------------------------------------

    def _authorize(self, request: httpx.Request, token: str | None) -> None:
        if token:
            request.headers["Authorization"] = f"{self._scheme} {token}"
        else:
            request.headers.pop("Authorization", None)

    def _form(self, refresh_token: str) -> dict[str, str]:
        return {**self._params, "grant_type": "refresh_token", "refresh_token": refresh_token}

    def _parse(self, response: httpx.Response) -> Tokens:
        if response.status_code != 200:
            raise TokenRefreshError(
                f"token endpoint {self._token_url} refused the refresh token "
                f"(HTTP {response.status_code}); the user must sign in again"
            )
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise TokenRefreshError(
                f"token endpoint {self._token_url} answered without a JSON 'access_token'"
            )
        rotated = data.get("refresh_token")
        return Tokens(data["access_token"], rotated if isinstance(rotated, str) else None)

    @staticmethod
    def _coerce(result: object) -> Tokens:
        if isinstance(result, Tokens):
            return result
        if isinstance(result, str) and result:
            return Tokens(result)
        raise TokenRefreshError(
            f"the refresh callable returned {type(result).__name__}; it must return Tokens(...) "
            "or the new access token as a non-empty str"
        )

    def _begin(self, ctx: RequestContext, state: _RefreshState, sent: str | None) -> str | None:
        """Under the lock: the token to use if someone already handled `sent`, else None."""
        if ctx.access_token and ctx.access_token != sent:
            return ctx.access_token  # another call of this request refreshed meanwhile
        if state.error is not None and state.failed_token == sent:
            raise TokenRefreshError(str(state.error)) from state.error
        if not ctx.refresh_token:
            raise TokenRefreshError(
                f"the access token of request {ctx.request_id} was rejected (401) and the request "
                "has no refresh_token; set ctx.refresh_token in the middleware's on_request hook"
            )
        return None

    @staticmethod
    def _finish(ctx: RequestContext, state: _RefreshState, tokens: Tokens) -> str:
        state.refreshes += 1
        ctx.access_token = tokens.access_token
        if tokens.refresh_token:
            ctx.refresh_token = tokens.refresh_token
        return tokens.access_token

    @staticmethod
    def _fail(state: _RefreshState, sent: str | None, error: TokenRefreshError) -> None:
        state.refreshes += 1
        state.failed_token = sent
        state.error = error

    # -- sync ---------------------------------------------------------------

    def _token_client(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout)
            return self._client

    def _unreachable(self, exc: httpx.HTTPError) -> TokenRefreshError:
        return TokenRefreshError(f"token endpoint {self._token_url} unreachable: {exc!r}")

    def _refresh_sync(self, refresh_token: str) -> Tokens:
        if self._refresh is not None:
            try:
                result = self._refresh(refresh_token)
            except TokenRefreshError:
                raise
            except Exception as exc:
                raise _refresh_failed(exc) from exc
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError(
                    "ContextBearerAuth(refresh=...) got an async function but is used by a sync "
                    "httpx.Client; pass a plain function, or use httpx.AsyncClient"
                )
            return self._coerce(result)
        assert self._token_url is not None
        try:
            response = self._token_client().post(self._token_url, data=self._form(refresh_token))
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return self._parse(response)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        ctx = current_request()
        sent = ctx.access_token
        self._authorize(request, sent)
        response = yield request
        if response.status_code != 401:
            return
        # Reading the (small) 401 body gives its connection back to the pool
        # before this call waits for a refresh.
        response.read()
        state = _state_of(ctx)
        with state.thread_lock:
            token = self._begin(ctx, state, sent)
            if token is None:
                assert ctx.refresh_token is not None
                try:
                    tokens = self._refresh_sync(ctx.refresh_token)
                except TokenRefreshError as exc:
                    self._fail(state, sent, exc)
                    raise
                token = self._finish(ctx, state, tokens)
        self._authorize(request, token)
        yield request

    # -- async --------------------------------------------------------------

    async def _refresh_async(self, refresh_token: str) -> Tokens:
        if self._refresh is not None:
            try:
                result = self._refresh(refresh_token)
                if inspect.isawaitable(result):
                    result = await result
            except TokenRefreshError:
                raise
            except Exception as exc:
                raise _refresh_failed(exc) from exc
            return self._coerce(result)
        assert self._token_url is not None
        try:
            client = self._async_token_client()
            response = await client.post(self._token_url, data=self._form(refresh_token))
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return self._parse(response)

    def _async_token_client(self) -> httpx.AsyncClient:
        if self._given_async_client is not None:
            return self._given_async_client
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = httpx.AsyncClient(timeout=self._timeout)
        return client

    async def aclose(self) -> None:
        """Close the async token-endpoint client this auth opened on the running loop."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        ctx = current_request()
        sent = ctx.access_token
        self._authorize(request, sent)
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()
        state = _state_of(ctx)
        async with state.async_lock:
            token = self._begin(ctx, state, sent)
            if token is None:
                assert ctx.refresh_token is not None
                try:
                    tokens = await self._refresh_async(ctx.refresh_token)
                except TokenRefreshError as exc:
                    self._fail(state, sent, exc)
                    raise
                token = self._finish(ctx, state, tokens)
        self._authorize(request, token)
        yield request

    def close(self) -> None:
        """Close the sync token-endpoint client, if one was opened."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _refresh_failed(exc: Exception) -> TokenRefreshError:
    return TokenRefreshError(f"the refresh callable failed: {exc!r}")
