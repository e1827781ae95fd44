"""Request-scoped values without passing them around, and read-only views for safe sharing.

* `RequestScope`: a small class over an `AsyncLocalStorage` with
  ``run`` / ``get`` / ``set`` / ``set_if_absent``: each ``run`` gets its own dict.
* `readonly(value)`: a view that refuses mutation, for code that must read the
  store but not change it (the store is shared by the whole request, so one
  module mutating it changes what every other module sees).
* `run_with_context(request, *tasks)`: Node's ``runWithContext(req, res, ...tasks)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar

from .._storage import AsyncLocalStorage, StorageScope
from ..errors import ReadOnlyError, ScopeNotActiveError
from ..errors import ScopeNotActive as ScopeNotActive
from ..request import OnRequest, RequestIdPolicy
from ..request._context import RequestContext, request_storage
from ..request._factory import RequestContextFactory, with_request_context

__all__ = [
    "ReadOnlyError",
    "ReadOnlyMapping",
    "ReadOnlyRequestContext",
    "RequestScope",
    "ScopeNotActiveError",
    "readonly",
    "readonly_request",
    "run_with_context",
]

T = TypeVar("T")
R = TypeVar("R")
_MISSING: Any = object()


class RequestScope:
    """A dict of request-scoped values kept in its own `AsyncLocalStorage`.

    ``scope.run(values, fn)`` calls `fn` with a fresh dict (a copy of
    `values`) visible through `get`/`set` to everything `fn` starts; two runs
    never share the dict, and the previous one is restored afterwards.

    Args:
        name: the storage's name (for reprs and diagnostics).
        storage: an existing storage of dicts to use instead of a new one.
    """

    __slots__ = ("_storage",)

    def __init__(
        self,
        name: str = "request-scope",
        *,
        storage: AsyncLocalStorage[dict[str, Any]] | None = None,
    ) -> None:
        if storage is not None and not isinstance(storage, AsyncLocalStorage):
            raise TypeError(
                "RequestScope(storage=...) needs an AsyncLocalStorage, got "
                f"{type(storage).__name__}"
            )
        self._storage: AsyncLocalStorage[dict[str, Any]] = (
            storage if storage is not None else AsyncLocalStorage(name=name)
        )

    @property
    def storage(self) -> AsyncLocalStorage[dict[str, Any]]:
        """The storage holding each run's dict."""
        return self._storage

    def run(
        self, values: Mapping[str, Any] | None, fn: Callable[..., R], /, *args: Any, **kwargs: Any
    ) -> R:
        """Call `fn(*args, **kwargs)` with a new scope holding a copy of `values`.

        An ``async`` `fn` makes `run` return a coroutine, as `AsyncLocalStorage.run` does.

        Raises:
            TypeError: `values` is not a mapping or `fn` is not callable.
        """
        return self._storage.run(self._new_store(values), fn, *args, **kwargs)

    def scope(self, values: Mapping[str, Any] | None = None) -> StorageScope[dict[str, Any]]:
        """`with scope.scope({...}):` — the context-manager form of `run`."""
        return self._storage.scope(self._new_store(values))

    @staticmethod
    def _new_store(values: Mapping[str, Any] | None) -> dict[str, Any]:
        if values is None:
            return {}
        if not isinstance(values, Mapping):
            raise TypeError(
                f"RequestScope.run(values, fn) needs a mapping or None, got {type(values).__name__}"
            )
        return dict(values)

    def _store(self, method: str) -> dict[str, Any]:
        store = self._storage.get_store()
        if store is None:
            raise ScopeNotActiveError(
                f"RequestScope.{method}() called outside a scope of {self._storage.name!r}; "
                "wrap the request in scope.run(values, handler) or `with scope.scope(values):`"
            )
        return store

    @property
    def active(self) -> bool:
        """True inside a `run`/`scope`."""
        return self._storage.get_store() is not None

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """The value of `key` in the current scope, else `default`.

        Raises:
            ScopeNotActiveError: no scope is active here.
            KeyError: `key` is not set and no `default` was given.
        """
        store = self._store("get")
        value = store.get(key, default)
        if value is _MISSING:
            raise KeyError(f"{key!r} is not set in this request scope; pass a default to get()")
        return value

    def set(self, key: str, value: Any) -> None:
        """Set `key` for the rest of the current scope (seen by everything in it).

        Raises:
            ScopeNotActiveError: no scope is active here.
            TypeError: `key` is not a string.
        """
        _check_key("set", key)
        self._store("set")[key] = value

    def set_if_absent(self, key: str, value: Any) -> Any:
        """Set `key` only when it is not set yet; return the value now stored (atomic)."""
        _check_key("set_if_absent", key)
        return self._store("set_if_absent").setdefault(key, value)

    def delete(self, key: str) -> None:
        """Remove `key` from the current scope if present."""
        self._store("delete").pop(key, None)

    def readonly(self) -> ReadOnlyMapping:
        """A read-only view of the current scope's values (see `readonly`)."""
        return ReadOnlyMapping(self._store("readonly"))

    def __repr__(self) -> str:
        return f"RequestScope(storage={self._storage!r})"


def _check_key(method: str, key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(f"RequestScope.{method}() key must be a str, got {type(key).__name__}")


class ReadOnlyMapping(Mapping[str, Any]):
    """A live, read-only view of a mapping; values read through it are read-only too."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return readonly(self._data[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ReadOnlyMapping({dict(self._data)!r})"

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        raise ReadOnlyError(f"cannot set {key!r}")

    def __delitem__(self, key: str) -> NoReturn:
        raise ReadOnlyError(f"cannot delete {key!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_data" and not hasattr(self, "_data"):
            object.__setattr__(self, name, value)
            return
        raise ReadOnlyError(f"cannot set attribute {name!r}")


_CONTEXT_MUTATORS = frozenset(
    {"set", "set_if_absent", "delete", "add_response_header", "on_response"}
)


class ReadOnlyRequestContext:
    """A view of a `RequestContext` that reads every field but changes none.

    Attribute assignment and the mutating methods (`set`, `set_if_absent`,
    `delete`, `add_response_header`, `on_response`) raise `ReadOnlyError`;
    mappings, lists and sets read through it come back read-only.
    """

    __slots__ = ("_ctx",)

    def __init__(self, ctx: RequestContext) -> None:
        object.__setattr__(self, "_ctx", ctx)

    def __getattr__(self, name: str) -> Any:
        if name in _CONTEXT_MUTATORS:
            raise ReadOnlyError(f"RequestContext.{name}() is not allowed")
        ctx: RequestContext = object.__getattribute__(self, "_ctx")
        return readonly(getattr(ctx, name))

    def get(self, key: str, default: Any = None) -> Any:
        """The app field `key` (read-only), or `default`."""
        ctx: RequestContext = object.__getattribute__(self, "_ctx")
        return readonly(ctx.get(key, default))

    def __contains__(self, key: object) -> bool:
        return key in object.__getattribute__(self, "_ctx")

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise ReadOnlyError(f"cannot set RequestContext.{name}")

    def __delattr__(self, name: str) -> NoReturn:
        raise ReadOnlyError(f"cannot delete RequestContext.{name}")

    def __repr__(self) -> str:
        return f"ReadOnly{object.__getattribute__(self, '_ctx')!r}"


class _ReadOnlyObject:
    """A proxy that reads attributes and items of any object but assigns none."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        object.__setattr__(self, "_obj", obj)

    def __getattr__(self, name: str) -> Any:
        return readonly(getattr(object.__getattribute__(self, "_obj"), name))

    def __getitem__(self, key: Any) -> Any:
        return readonly(object.__getattribute__(self, "_obj")[key])

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise ReadOnlyError(f"cannot set attribute {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise ReadOnlyError(f"cannot delete attribute {name!r}")

    def __setitem__(self, key: Any, value: Any) -> NoReturn:
        raise ReadOnlyError(f"cannot set item {key!r}")

    def __eq__(self, other: object) -> bool:
        return bool(object.__getattribute__(self, "_obj") == other)

    def __hash__(self) -> int:
        return hash(object.__getattribute__(self, "_obj"))

    def __repr__(self) -> str:
        return f"readonly({object.__getattribute__(self, '_obj')!r})"


_IMMUTABLE = (str, bytes, int, float, complex, bool, type(None), frozenset, range)


def readonly(value: Any) -> Any:
    """A read-only view of `value`, deep where it can be.

    * mappings -> `ReadOnlyMapping` (a live view; nested values read-only too);
    * lists and tuples -> tuples of read-only items; sets -> frozensets (copies);
    * a `RequestContext` -> `ReadOnlyRequestContext`;
    * strings, numbers, None and other immutables -> unchanged;
    * any other object -> a proxy whose attribute and item assignment raise
      `ReadOnlyError`. Methods of such objects are not policed: a method that
      mutates its own object still can.
    """
    if isinstance(value, MappingProxyType):
        return ReadOnlyMapping(value)
    if isinstance(value, (*_IMMUTABLE, ReadOnlyMapping, ReadOnlyRequestContext, _ReadOnlyObject)):
        return value
    if isinstance(value, RequestContext):
        return ReadOnlyRequestContext(value)
    if isinstance(value, Mapping):
        return ReadOnlyMapping(value)
    if isinstance(value, (list, tuple)):
        return tuple(readonly(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(value)
    if callable(value) or inspect.ismodule(value):
        return value
    return _ReadOnlyObject(value)


def readonly_request() -> ReadOnlyRequestContext:
    """A read-only view of the current `RequestContext`.

    Raises:
        NoRequestContext: no request is active here.
    """
    from ..request._context import current_request

    return ReadOnlyRequestContext(current_request())


async def run_with_context(
    request: RequestContext | Mapping[str, str],
    *tasks: Callable[[], Awaitable[Any] | Any],
    factory: RequestContextFactory | None = None,
    policy: RequestIdPolicy | None = None,
    on_request: OnRequest | None = None,
) -> list[Any]:
    """Run `tasks` one after another under one request context; return their results.

    The Python form of Node's ``runWithContext(req, res, ...tasks)`` helper.
    `request` is a ready `RequestContext` (used as is) or a mapping of
    headers, from which a context is built as `with_request_context` does: by
    `factory`, or by a factory made of `policy` (the request-id policy; default
    `RequestIdPolicy()`) and `on_request` (a hook run on the new context). Each
    task is a zero-argument callable, sync or async; they share the context
    object, so a value one task sets is seen by the next. The first task that
    raises stops the sequence and its exception propagates.

    Raises:
        TypeError: `request` is neither a `RequestContext` nor a mapping, a task
            is not callable, `factory` is given with `policy`/`on_request`, or any
            of them is given with a ready `RequestContext`.
    """
    for index, task in enumerate(tasks):
        if not callable(task):
            raise TypeError(
                f"run_with_context() task #{index} is {type(task).__name__}, not a callable; "
                "pass functions (e.g. `load_user`, not `load_user()`)"
            )

    async def run_all() -> list[Any]:
        results: list[Any] = []
        for task in tasks:
            result = task()
            if inspect.isawaitable(result):
                result = await result
            results.append(result)
        return results

    if isinstance(request, RequestContext):
        if factory is not None or policy is not None or on_request is not None:
            raise TypeError(
                "run_with_context(): factory, policy and on_request apply only when request "
                "is a header mapping, not a ready RequestContext"
            )
        with request_storage.scope(request):
            return await run_all()
    if not isinstance(request, Mapping):
        raise TypeError(
            "run_with_context(request, ...) needs a RequestContext or a mapping of headers, "
            f"got {type(request).__name__}"
        )
    if factory is None:
        factory = RequestContextFactory(policy=policy, on_request=on_request)
    elif policy is not None or on_request is not None:
        raise TypeError(
            "run_with_context(): pass either factory=... or policy=/on_request=, not both"
        )
    result: list[Any] = await with_request_context(request, run_all, factory=factory)
    return result
