"""The asynclocal pytest plugin, registered through the ``pytest11`` entry point.

It touches only asynclocal's own storages (every live `AsyncLocalStorage`, found
through the core's registry of instances, which holds them weakly). Tests run in
pytest's own context, exactly as without the plugin: a project's own ``ContextVar``
set in one test is visible in the next as it would be anyway, tokens made in a
test can be reset by its fixtures, and a project that never creates a storage sees
no change at all.

* **No asynclocal store leaks from one test into the next.**
  - A store the test itself sets (``als.enter_with(...)`` with no cleanup) is
    put back when the test function returns: each storage whose value changed
    during the call gets the value it had before (its default if it had none).
  - A store that a function-scoped fixture sets (even with ``enter_with`` and
    no cleanup) is put back once the test's teardown is done; one set by a
    module/session fixture stays for the tests that use it and is put back
    when that fixture is finalized.
  - Async tests under pytest-asyncio and anyio already run in a copy of the
    context, so what they set never reaches the next test.
  Disable with the ini option ``asynclocal_isolate = false``.
* **Tests inside a request.** ``@pytest.mark.request_context(user=...,
  request_id=..., **fields)`` runs the test inside a `RequestContext`; the
  ``request_context`` fixture returns it (and applies the marker's values).

Known limit: async tests that share one anyio runner (a module-scoped async
fixture keeps it alive) run in that runner task's context, so an
``enter_with`` in one of them is seen by the next; use ``als.run``/``scope``.
Cost per test: a scan of the live storages around the call and each fixture
setup (microseconds).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextvars import ContextVar
from typing import Any

import pytest

from .._storage import live_storages
from ..request._context import RequestContext, request_storage
from ._factory import make_request_context

__all__ = ["make_request_context"]

_INI = "asynclocal_isolate"
_MISSING: Any = object()
_MARKER = "request_context"


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
    before = _snapshot()
    try:
        return (yield)
    finally:
        _undo(_changes(before))


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
