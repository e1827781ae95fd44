"""The C accelerator and its pure-Python twin: which one runs, and what both must keep.

The whole `tests/core` suite runs twice in `scripts/test.sh`: once normally (the C
accelerator `asynclocal._speedups`) and once with ``ASYNCLOCAL_PURE_PYTHON=1``.
"""

from __future__ import annotations

import copy
import gc
import os
import pickle
import subprocess
import sys
import weakref
from typing import Any

import pytest

from asynclocal import AsyncLocalStorage, AsyncResource
from asynclocal._accel import PURE_PYTHON_ENV
from asynclocal._storage import SPEEDUPS

PURE_REQUESTED = os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")


def test_the_accelerator_is_loaded_unless_pure_python_is_requested() -> None:
    # A build that silently failed (pip install falls back to pure Python) shows up here.
    assert SPEEDUPS is (not PURE_REQUESTED)
    runner_type = type(AsyncLocalStorage.snapshot()).__name__
    assert (runner_type == "ContextRunner") is SPEEDUPS


def test_the_environment_variable_selects_the_implementation() -> None:
    code = "import asynclocal._storage as s; print(s.SPEEDUPS)"
    env = {k: v for k, v in os.environ.items() if k != PURE_PYTHON_ENV}
    results = {}
    for value in ("1", "0"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, PURE_PYTHON_ENV: value},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        results[value] = out.stdout.strip()
    assert results["1"] == "False"
    assert results["0"] == "True"


# -- subclasses ---------------------------------------------------------------------


def test_overrides_survive_in_subclasses_of_subclasses() -> None:
    class Upper(AsyncLocalStorage[str]):
        def get_store(self) -> str | None:
            store = self.context_var.get()
            return None if store is None else store.upper()

    class Deeper(Upper):
        pass

    class Counting(AsyncLocalStorage[str]):
        calls = 0

        def run(self, store: str, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            type(self).calls += 1
            return super().run(store, fn, *args, **kwargs)

    class Plain(AsyncLocalStorage[str]):
        pass

    deeper = Deeper(name="deeper")
    assert deeper.run("abc", deeper.get_store) == "ABC"
    counting = Counting(name="counting")
    assert counting.run("x", counting.get_store, **{}) == "x"
    assert Counting.calls == 1
    plain = Plain(name="plain")
    assert plain.run("p", plain.get_store) == "p"
    assert plain.exit(plain.get_store) is None
    assert plain.get_store() is None


def test_a_subclass_that_skips_init_fails_clearly() -> None:
    class NoInit(AsyncLocalStorage[str]):
        def __init__(self) -> None:
            pass

    broken = NoInit()
    with pytest.raises((RuntimeError, AttributeError)):
        broken.run("x", print)


def test_missing_arguments_raise_type_error() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage()
    with pytest.raises(TypeError):
        als.run("only-a-store")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        als.exit()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"\bfn\b"):
        AsyncLocalStorage.snapshot()()
    assert als.get_store() is None


# -- identity: pickling, copying, weak references -------------------------------------


def test_a_storage_is_not_picklable_and_copies_are_itself() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(name="identity")
    with pytest.raises(TypeError, match=r"cannot be pickled.*Pickle the store"):
        pickle.dumps(als)
    assert copy.copy(als) is als
    holder = copy.deepcopy({"storage": als, "data": [1]})
    assert holder["storage"] is als
    assert als.run("s", als.get_store) == "s"


def test_storages_and_bound_callables_support_weak_references() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(name="weak")
    ref = weakref.ref(als)
    assert ref() is als

    def body() -> str | None:
        return als.get_store()

    bound = als.run("b", AsyncLocalStorage.bind, body)
    bound_ref = weakref.ref(bound)
    assert bound_ref() is bound
    del bound
    gc.collect()
    assert bound_ref() is None


# -- bind: wrapper metadata and method binding -----------------------------------------


def test_bind_keeps_the_wrapped_functions_metadata() -> None:
    def handler(x: int) -> int:
        """Handle x."""
        return x

    handler.marker = "kept"  # type: ignore[attr-defined]
    bound = AsyncLocalStorage.bind(handler)
    assert bound.__wrapped__ is handler  # type: ignore[attr-defined]
    assert bound.__name__ == "handler"
    assert bound.__qualname__ == handler.__qualname__
    assert bound.__doc__ == "Handle x."
    assert bound.__module__ == __name__
    assert bound.marker == "kept"  # type: ignore[attr-defined]
    assert bound(3) == 3


def test_a_bound_function_stored_on_a_class_binds_like_a_method() -> None:
    als: AsyncLocalStorage[str] = AsyncLocalStorage(name="method")

    def describe(self: Any, suffix: str) -> str:
        return f"{type(self).__name__}:{als.get_store()}:{suffix}"

    class Service:
        run = als.run("captured", AsyncLocalStorage.bind, describe)

    assert Service().run("x") == "Service:captured:x"
    assert Service.run(Service(), "y") == "Service:captured:y"


# -- no reference leaks (deterministic: reference counts, not timings) -----------------


def test_hot_paths_leak_no_references() -> None:
    als: AsyncLocalStorage[object] = AsyncLocalStorage(name="refs", default=object())
    store, arg, kwarg = object(), object(), object()
    not_callable = object()

    class Boom(Exception):
        pass

    def ok(a: object, k: object = None) -> object:
        return a

    def fail(a: object, k: object = None) -> object:
        raise Boom

    runner = AsyncLocalStorage.snapshot()
    bound = AsyncLocalStorage.bind(ok)
    resource = AsyncResource("RefCheck")
    tracked = [store, arg, kwarg, not_callable, ok, fail, als, als.context_var, als.default]
    tracked += [runner, bound, resource]

    def loop(n: int) -> None:
        for _ in range(n):
            als.get_store()
            als.run(store, ok, arg)
            als.run(store, ok, arg, k=kwarg)
            als.exit(ok, arg, k=kwarg)
            runner(ok, arg, k=kwarg)
            bound(arg, k=kwarg)
            resource.run_in_async_scope(ok, arg, k=kwarg)
            for call in (
                lambda: als.run(store, fail, arg, k=kwarg),
                lambda: als.run(store, not_callable),  # type: ignore[arg-type]
                lambda: als.exit(not_callable, arg),  # type: ignore[arg-type]
                lambda: runner(fail, arg),
                lambda: runner(not_callable, arg),
            ):
                try:
                    call()
                except (Boom, TypeError):
                    pass

    loop(100)  # warm up caches
    gc.collect()
    before = [sys.getrefcount(obj) for obj in tracked]
    loop(5_000)
    gc.collect()
    after = [sys.getrefcount(obj) for obj in tracked]
    assert after == before
