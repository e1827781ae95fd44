"""The asynclocal pytest plugin, registered through the ``pytest11`` entry point.

What it does, for every test of every project that has asynclocal installed:

* **No stores leak from one test into the next.**
  - The test function itself (``item.runtest``) runs in a copy of the
    current context, so whatever it sets (``als.enter_with(...)``, any
    ``ContextVar``) is discarded when it returns. Async tests under
    pytest-asyncio and anyio start their tasks from that copy.
  - A store that a function-scoped fixture sets (even with ``enter_with`` and
    no cleanup) is restored once the test's teardown is done; one set by a
    module/session fixture stays for the tests that use it and is restored
    when that fixture is finalized.
  - Fixture setup and teardown keep running in pytest's own context, so
    fixtures that set and later reset context variables with tokens (anyio's
    runner, pytest-asyncio's async fixtures) keep working, and a test sees
    what its fixtures set.
  Disable with the ini option ``asynclocal_isolate = false``.
* **Tests inside a request.** ``@pytest.mark.request_context(user=...,
  request_id=..., **fields)`` runs the test inside a `RequestContext`; the
  ``request_context`` fixture returns it (and applies the marker's values).

Known limit: async tests that share one anyio runner (a module-scoped async
fixture keeps it alive) run in that runner task's context, so an
``enter_with`` in one of them is seen by the next; use ``als.run``/``scope``.
Cost per test: one context copy and a scan of the live storages around each
fixture setup (microseconds).
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Generator, Iterator
from contextvars import ContextVar
from typing import Any

import pytest

from .._storage import live_storages
from ..request._context import REQUEST_CONTEXT_ARGS, RequestContext, request_storage

__all__ = ["make_request_context"]

_INI = "asynclocal_isolate"
_MISSING: Any = object()
_MARKER = "request_context"
_counter = itertools.count(1)


def make_request_context(**values: Any) -> RequestContext:
    """A `RequestContext` for tests: `RequestContext` keywords, plus app fields.

    Keywords that are not `RequestContext` arguments become app fields
    (``roles=["admin"]`` -> ``ctx.get("roles")``). ``request_id`` defaults to
    ``"test-<n>"``.
    """
    fields = dict(values.pop("fields", None) or {})
    for key in [k for k in values if k not in REQUEST_CONTEXT_ARGS]:
        fields[key] = values.pop(key)
    request_id = values.pop("request_id", None) or f"test-{next(_counter)}"
    return RequestContext(request_id, fields=fields, **values)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _INI,
        "keep asynclocal stores (and context variables set by a test) from leaking between tests",
        type="bool",
        default=True,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**values): run the test inside an asynclocal RequestContext built from "
        "values (user=..., request_id=..., access_token=..., other keys become app fields)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", None)
        if (
            isinstance(names, list)
            and _MARKER not in names
            and item.get_closest_marker(_MARKER) is not None
        ):
            # First, so fixtures the test asks for already run inside the request.
            names.insert(0, _MARKER)


def _isolating(config: pytest.Config) -> bool:
    return bool(config.getini(_INI))


_Undo = list[tuple[ContextVar[Any], Any, Any]]  # (var, value before, storage default)
_item_undo = pytest.StashKey[_Undo]()
_fixture_undo: dict[int, _Undo] = {}


def _snapshot() -> dict[ContextVar[Any], Any]:
    return {s.context_var: s.context_var.get(_MISSING) for s in live_storages()}


def _changes(before: dict[ContextVar[Any], Any]) -> _Undo:
    changed: _Undo = []
    for storage in live_storages():
        var = storage.context_var
        old = before.get(var, _MISSING)
        if var.get(_MISSING) is not old:
            changed.append((var, old, storage.default))
    return changed


def _undo(changes: _Undo) -> None:
    for var, old, default in reversed(changes):
        if var.get(_MISSING) is not old:
            # A ContextVar cannot be unset without its token: a store that was
            # absent goes back to the storage's default (what get_store() returned).
            var.set(default if old is _MISSING else old)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: Any, request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    if not _isolating(request.config):
        return (yield)
    before = _snapshot()
    try:
        return (yield)
    finally:
        changed = _changes(before)
        if changed:
            if fixturedef.scope == "function":
                request.node.stash.setdefault(_item_undo, []).extend(changed)
            else:
                _fixture_undo.setdefault(id(fixturedef), []).extend(changed)


def pytest_fixture_post_finalizer(fixturedef: Any, request: pytest.FixtureRequest) -> None:
    changed = _fixture_undo.pop(id(fixturedef), None)
    if changed:
        _undo(changed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    if not _isolating(item.config):
        return (yield)
    saved = item.__dict__.get("runtest", _MISSING)
    runtest = item.runtest
    ctx = contextvars.copy_context()
    item.runtest = lambda: ctx.run(runtest)  # type: ignore[method-assign]
    try:
        return (yield)
    finally:
        if saved is _MISSING:
            item.__dict__.pop("runtest", None)
        else:
            item.runtest = saved  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    try:
        return (yield)
    finally:
        changed = item.stash.get(_item_undo, None)
        if changed:
            del item.stash[_item_undo]
            _undo(changed)


@pytest.fixture(name=_MARKER)
def request_context_fixture(request: pytest.FixtureRequest) -> Iterator[RequestContext]:
    """The test's `RequestContext`, visible to the test and to what it starts.

    Built from the closest ``@pytest.mark.request_context(...)`` values (see
    `make_request_context`); without a marker, a context with a generated id.
    """
    marker = request.node.get_closest_marker(_MARKER)
    values: dict[str, Any] = {}
    if marker is not None:
        if marker.args:
            raise TypeError(
                "@pytest.mark.request_context takes keywords only, e.g. "
                "@pytest.mark.request_context(user={'id': 'u-1'}, request_id='r-1')"
            )
        values = dict(marker.kwargs)
    ctx = make_request_context(**values)
    with request_storage.scope(ctx):
        yield ctx
